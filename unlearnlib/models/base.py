"""What every model shares: the pooling the small networks use, building a registered model, and finding layers.

Every function in unlearnlib that takes a model accepts any ``nn.Module`` mapping images to logits. A model may
name two layers the defenses use: ``last_conv`` (fine-pruning's layer, the edit cascade's start) and
``edit_layer`` (the layer the edit rewrites); a model that names none (a user's, or the grid's ``lenet5``, ``mlp``
and ``small-bn``) gets them by the generic rules (:func:`last_conv_name`,
:func:`unlearnlib.ml.edit.default_edit_layer`).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from ..core.registry import MODELS


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
