"""Input validation shared by every module: each error names the parameter and what was expected."""

from __future__ import annotations

import math

import torch
from torch import nn


def check_images(x: object, param: str = "x", shape: tuple[int, ...] | None = None) -> torch.Tensor:
    """A float image batch ``(N, C, H, W)``; ``shape`` optionally fixes ``(C, H, W)``."""
    if not isinstance(x, torch.Tensor):
        raise TypeError(f"{param} must be a torch.Tensor of images (N, C, H, W), got {type(x).__name__}")
    if x.dim() != 4:
        raise ValueError(f"{param} must have shape (N, C, H, W), got shape {tuple(x.shape)}")
    if not x.is_floating_point():
        raise TypeError(f"{param} must be a floating-point tensor with values in [0, 1], got dtype {x.dtype}")
    if shape is not None and tuple(x.shape[1:]) != tuple(shape):
        raise ValueError(f"{param} must have image shape {tuple(shape)}, got {tuple(x.shape[1:])}")
    return x


def check_labels(y: object, n: int, num_classes: int, param: str = "y") -> torch.Tensor:
    if not isinstance(y, torch.Tensor) or y.dtype != torch.long or y.dim() != 1 or len(y) != n:
        raise TypeError(f"{param} must be a 1-D torch.long tensor of length {n}")
    if n and (int(y.min()) < 0 or int(y.max()) >= num_classes):
        raise ValueError(f"{param} must hold class indices in [0, {num_classes - 1}]")
    return y


def check_class(value: object, num_classes: int, param: str = "target") -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value < num_classes:
        raise ValueError(f"{param} must be a class index in [0, {num_classes - 1}], got {value!r}")
    return value


def check_fraction(value: object, param: str, *, low_open: bool = True, high_closed: bool = True,
                   low: float = 0.0, high: float = 1.0) -> float:
    """A number in ``(low, high]`` (default) -- the interval is spelled out in the error."""
    ok = isinstance(value, (int, float)) and not isinstance(value, bool)
    if ok:
        v = float(value)
        ok = (v > low if low_open else v >= low) and (v <= high if high_closed else v < high)
    if not ok:
        interval = f"{'(' if low_open else '['}{low:g}, {high:g}{']' if high_closed else ')'}"
        raise ValueError(f"{param} must be a number in {interval}, got {value!r}")
    return float(value)


def _finite_real(value: object) -> bool:
    """A finite ``int`` or ``float`` (``bool`` excluded; an int too large for a float is not finite)."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return False
    try:
        return math.isfinite(value)
    except OverflowError:
        return False


def check_choice(value: object, choices: tuple[str, ...], param: str, meaning: str) -> str:
    """``value`` if it is one of ``choices``, else a ValueError naming the parameter and what it means."""
    if not isinstance(value, str) or value not in choices:
        raise ValueError(f"{param} must be one of {', '.join(map(repr, choices))} ({meaning}), got {value!r}")
    return value


def check_number(value: object, param: str, minimum: float = 0.0) -> float:
    """A finite real number ``>= minimum`` (default: non-negative), returned as a float."""
    if not (_finite_real(value) and value >= minimum):
        raise ValueError(f"{param} must be a finite number >= {minimum:g}, got {value!r}")
    return float(value)


def check_positive_number(value: object, param: str) -> float:
    """A finite real number ``> 0`` (a learning rate, a temperature), returned as a float."""
    if not (_finite_real(value) and value > 0):
        raise ValueError(f"{param} must be a finite number > 0, got {value!r}")
    return float(value)


def check_positive_int(value: object, param: str, minimum: int = 1) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise ValueError(f"{param} must be an integer >= {minimum}, got {value!r}")
    return value


def check_classifier(model: object, param: str = "model") -> nn.Module:
    if not isinstance(model, nn.Module):
        raise TypeError(f"{param} must be a torch.nn.Module mapping images to logits, got {type(model).__name__}")
    return model


def check_eval_mode(model: nn.Module, param: str = "model") -> None:
    """Defenses take a model in eval mode: BatchNorm statistics must not drift while we probe it."""
    if model.training:
        raise ValueError(f"{param} is in training mode; call {param}.eval() before passing it to a defense")


def check_same_device(model: nn.Module, x: torch.Tensor, param: str = "model") -> None:
    p = next(iter(model.parameters()), None)
    if p is not None and p.device != x.device:
        raise ValueError(f"{param} is on {p.device} but the data is on {x.device}; move both to one device")
