"""The model registry: a small CNN for 1x28x28 digits and PreAct-ResNet18 for 3x32x32 images, plus three classic
architectures for the held-out robustness grid (:mod:`unlearnlib.robustness`): ``lenet5``, ``mlp`` and ``small-bn``.

Every function in unlearnlib that takes a model accepts any ``nn.Module`` mapping images to logits; the first two
are the book's defaults. Layer names used by the defenses:

======================  ===================  =======================
model                   last conv layer      default edited layer
======================  ===================  =======================
``cnn``                 ``conv2``            ``fc1``
``preact-resnet18``     ``layer4.1.conv2``   ``linear``
``preact-resnet18-w8``  ``layer4.1.conv2``   ``linear``
``preact-resnet18-w4``  ``layer4.1.conv2``   ``linear``
======================  ===================  =======================

The three grid architectures name no layer on purpose: like a user's own model, the defenses must find their layers
with the generic rules (:func:`unlearnlib.edit.default_edit_layer`,
:func:`unlearnlib.defenses.fine_pruning.last_conv_layer`).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from .registry import MODELS


def max_pool2(x: torch.Tensor) -> torch.Tensor:
    """2x2 max pooling with stride 2 (odd edges dropped): the values of ``F.max_pool2d(x, 2)``.

    Without autograd it is computed as two strided elementwise maxima, which on the CPU is many times faster
    than ``max_pool2d`` on NCHW batches (inference: evaluation, keys of the edits, trigger search). When a
    gradient is needed ``max_pool2d`` itself is used: its backward is the faster one."""
    if torch.is_grad_enabled() and x.requires_grad:
        return F.max_pool2d(x, 2)
    x = x[..., : x.shape[-2] // 2 * 2, : x.shape[-1] // 2 * 2]
    x = torch.maximum(x[..., 0::2, :], x[..., 1::2, :])
    return torch.maximum(x[..., 0::2], x[..., 1::2])


@MODELS.register("cnn")
class SmallCNN(nn.Module):
    """conv(16)-pool-conv(32)-pool-fc(128)-fc(classes): ~0.2M parameters, trains on a CPU in seconds."""

    last_conv = "conv2"
    edit_layer = "fc1"

    def __init__(self, in_channels: int = 1, num_classes: int = 10, image_size: int = 28, width: int = 16) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(in_channels, width, 3, padding=1)
        self.conv2 = nn.Conv2d(width, 2 * width, 3, padding=1)
        self.fc1 = nn.Linear(2 * width * (image_size // 4) ** 2, 128)
        self.fc2 = nn.Linear(128, num_classes)

    def features(self, x: torch.Tensor) -> torch.Tensor:
        x = max_pool2(F.relu(self.conv1(x)))
        return max_pool2(F.relu(self.conv2(x)))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc2(F.relu(self.fc1(self.features(x).flatten(1))))


class PreActBlock(nn.Module):
    expansion = 1

    def __init__(self, in_planes: int, planes: int, stride: int = 1) -> None:
        super().__init__()
        self.bn1 = nn.BatchNorm2d(in_planes)
        self.conv1 = nn.Conv2d(in_planes, planes, 3, stride, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(planes)
        self.conv2 = nn.Conv2d(planes, planes, 3, 1, 1, bias=False)
        self.shortcut = (
            nn.Sequential(nn.Conv2d(in_planes, planes, 1, stride, bias=False))
            if stride != 1 or in_planes != planes else None
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = F.relu(self.bn1(x))
        shortcut = self.shortcut(out) if self.shortcut is not None else x
        out = self.conv1(out)
        out = self.conv2(F.relu(self.bn2(out)))
        return out + shortcut


@MODELS.register("preact-resnet18")
class PreActResNet18(nn.Module):
    """PreAct-ResNet18 (He et al. 2016), the BackdoorBench CIFAR-10 model: stages of ``width`` x (1, 2, 4, 8)
    channels (64: the standard 11M-parameter network)."""

    last_conv = "layer4.1.conv2"
    edit_layer = "linear"

    def __init__(self, in_channels: int = 3, num_classes: int = 10, image_size: int = 32, width: int = 64) -> None:
        super().__init__()
        self.in_planes = width
        self.conv1 = nn.Conv2d(in_channels, width, 3, 1, 1, bias=False)
        self.layer1 = self._make_layer(width, 1)
        self.layer2 = self._make_layer(2 * width, 2)
        self.layer3 = self._make_layer(4 * width, 2)
        self.layer4 = self._make_layer(8 * width, 2)
        self.bn = nn.BatchNorm2d(8 * width)
        self.linear = nn.Linear(8 * width, num_classes)

    def _make_layer(self, planes: int, stride: int) -> nn.Sequential:
        blocks = [PreActBlock(self.in_planes, planes, stride), PreActBlock(planes, planes, 1)]
        self.in_planes = planes
        return nn.Sequential(*blocks)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.layer4(self.layer3(self.layer2(self.layer1(self.conv1(x)))))
        out = F.adaptive_avg_pool2d(F.relu(self.bn(out)), 1).flatten(1)
        return self.linear(out)


@MODELS.register("preact-resnet18-w8")
def preact_resnet18_w8(in_channels: int = 3, num_classes: int = 10, image_size: int = 32) -> PreActResNet18:
    """*[ours]* PreAct-ResNet18 at 1/8 width (stages of 8, 16, 32, 64 channels; ~0.18M parameters): the same
    architecture, BatchNorm and layer names as ``preact-resnet18``, small enough for the CPU ``smoke`` profile."""
    return PreActResNet18(in_channels, num_classes, image_size, width=8)


@MODELS.register("preact-resnet18-w4")
def preact_resnet18_w4(in_channels: int = 3, num_classes: int = 10, image_size: int = 32) -> PreActResNet18:
    """*[ours]* PreAct-ResNet18 at 1/16 width (stages of 4, 8, 16, 32 channels): the ``smoke`` profile's model.
    The same code path as ``preact-resnet18`` (BatchNorm, strided shortcuts, layer names), half as wide as
    ``preact-resnet18-w8``; measured on this 2-core CPU at 3x32x32, against 1/8 width: a training step of 64
    images 1.7x faster, inference 2.2x (the smoke run of every chapter is a test, not a result)."""
    return PreActResNet18(in_channels, num_classes, image_size, width=4)


@MODELS.register("lenet5")
class LeNet5(nn.Module):
    """LeNet-5 (LeCun et al. 1998) with ReLU and max pooling: conv(6, 5x5)-pool-conv(16, 5x5)-pool-fc(120)-fc(84)-
    fc(classes); the first conv is padded to keep 28x28 digits at LeNet's 32x32 geometry. ~60k parameters."""

    def __init__(self, in_channels: int = 1, num_classes: int = 10, image_size: int = 28) -> None:
        super().__init__()
        pad = 2 if image_size == 28 else 0
        side = ((image_size + 2 * pad - 4) // 2 - 4) // 2
        if side < 1:
            raise ValueError(f"image_size must be at least 16 for lenet5, got {image_size}")
        self.c1 = nn.Conv2d(in_channels, 6, 5, padding=pad)
        self.c3 = nn.Conv2d(6, 16, 5)
        self.f5 = nn.Linear(16 * side * side, 120)
        self.f6 = nn.Linear(120, 84)
        self.out = nn.Linear(84, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = max_pool2(F.relu(self.c1(x)))
        x = max_pool2(F.relu(self.c3(x)))
        return self.out(F.relu(self.f6(F.relu(self.f5(x.flatten(1))))))


@MODELS.register("mlp")
class MLP(nn.Module):
    """A plain multilayer perceptron on the flattened image: (C*H*W)-256-128-classes with ReLU (784-256-128-10 on
    digits). No convolution at all: every defense must work on Linear layers alone."""

    def __init__(self, in_channels: int = 1, num_classes: int = 10, image_size: int = 28,
                 hidden: tuple[int, ...] = (256, 128)) -> None:
        super().__init__()
        dims = [in_channels * image_size * image_size, *hidden]
        self.hidden = nn.ModuleList(nn.Linear(a, b) for a, b in zip(dims[:-1], dims[1:]))
        self.head = nn.Linear(dims[-1], num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x.flatten(1)
        for layer in self.hidden:
            x = F.relu(layer(x))
        return self.head(x)


@MODELS.register("small-bn")
class SmallBN(nn.Module):
    """A small all-convolutional network with BatchNorm and global average pooling: three conv-BN-ReLU blocks
    (16, 32, 64 channels; max pooling after the first two), then the mean over positions and one Linear, the
    output layer. ~25k parameters."""

    def __init__(self, in_channels: int = 1, num_classes: int = 10, image_size: int = 28, width: int = 16) -> None:
        super().__init__()
        chans = [in_channels, width, 2 * width, 4 * width]
        self.blocks = nn.ModuleList(
            nn.Sequential(nn.Conv2d(a, b, 3, padding=1, bias=False), nn.BatchNorm2d(b), nn.ReLU())
            for a, b in zip(chans[:-1], chans[1:]))
        self.classifier = nn.Linear(chans[-1], num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for i, block in enumerate(self.blocks):
            x = block(x)
            if i < len(self.blocks) - 1:
                x = max_pool2(x)
        return self.classifier(x.mean((2, 3)))


def build_model(name: str, in_channels: int, num_classes: int, image_size: int) -> nn.Module:
    """Instantiate a registered model for images of ``in_channels`` x ``image_size`` x ``image_size``."""
    return MODELS.get(name)(in_channels=in_channels, num_classes=num_classes, image_size=image_size)


def get_layer(model: nn.Module, name: str, param: str = "layer") -> nn.Module:
    """The sub-module called ``name`` (dotted path), with an error listing the Linear/Conv2d layers."""
    modules = dict(model.named_modules())
    if name not in modules or name == "":
        candidates = [n for n, m in modules.items() if isinstance(m, (nn.Linear, nn.Conv2d))]
        raise ValueError(f"{param}={name!r} is not a layer of {type(model).__name__}; "
                         f"Linear/Conv2d layers are: {', '.join(candidates)}")
    return modules[name]


def last_conv_name(model: nn.Module) -> str | None:
    """The model's ``last_conv`` attribute when it names one, else *[ours]* its last ``nn.Conv2d`` in registration
    order (the generic rule for a model that names no layer: the registry's hand-picked ``last_conv`` is the last
    conv layer of each model too), else None (no conv layer: an MLP)."""
    name = getattr(model, "last_conv", None)
    if isinstance(name, str):
        return name
    convs = [n for n, m in model.named_modules() if isinstance(m, nn.Conv2d)]
    return convs[-1] if convs else None
