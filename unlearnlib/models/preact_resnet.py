"""PreAct-ResNet18 (He et al. 2016), the BackdoorBench CIFAR-10 model, at full width and at 1/8 and 1/16 width
(``preact-resnet18``, ``-w8``, ``-w4``): last conv ``layer4.1.conv2``, edited layer ``linear``."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from ..core.registry import MODELS


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
    ``preact-resnet18-w8`` and faster on a CPU (the smoke run of every chapter is a test, not a result; the
    timings: docs/decisions/0012-cpu-speed.md)."""
    return PreActResNet18(in_channels, num_classes, image_size, width=4)
