"""Triggers and poisoning (BadNets: Gu et al. 2017; Blended: Chen et al. 2017).

A trigger is any object with ``apply(x) -> x`` on image batches. The built-in ones write

    T(x) = (1 - m) * x + m * p                                        (trigger equation)

with a mask ``m`` in [0, 1] and a pattern ``p`` (both ``(C, H, W)``), exposed for plots. A plain callable
``x -> x`` works wherever a trigger is expected (see :func:`as_trigger`).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol, Union, runtime_checkable

import torch

from .checks import check_class, check_fraction, check_images, check_positive_int
from .data import Data
from .registry import ATTACKS


@runtime_checkable
class TriggerLike(Protocol):
    def apply(self, x: torch.Tensor) -> torch.Tensor: ...


TriggerArg = Union[TriggerLike, Callable[[torch.Tensor], torch.Tensor]]


class Trigger:
    """``T(x) = (1 - m) x + m p`` with a fixed mask and pattern."""

    name = "trigger"

    def __init__(self, mask: torch.Tensor, pattern: torch.Tensor) -> None:
        if mask.dim() != 3 or pattern.dim() != 3:
            raise ValueError("mask and pattern must be (C, H, W) tensors")
        self.mask = mask.float().clamp(0, 1)
        self.pattern = pattern.float().clamp(0, 1)

    @property
    def image_shape(self) -> tuple[int, int, int]:
        return tuple(self.pattern.shape)  # type: ignore[return-value]

    def apply(self, x: torch.Tensor) -> torch.Tensor:
        check_images(x, "x", self.image_shape)
        m, p = self.mask.to(x.device, x.dtype), self.pattern.to(x.device, x.dtype)
        return (1 - m) * x + m * p

    __call__ = apply

    def __repr__(self) -> str:
        return f"{type(self).__name__}(shape={self.image_shape})"


class BadNets(Trigger):
    """A ``size`` x ``size`` patch pasted at the bottom-right corner or, per sample, at a random position."""

    name = "badnets"

    def __init__(self, image_shape: tuple[int, int, int], size: int = 3, pattern: str | torch.Tensor = "white",
                 color: tuple[float, ...] | float = 1.0, position: str = "corner", margin: int = 1,
                 seed: int = 0) -> None:
        c, h, w = image_shape
        check_positive_int(size, "size")
        if size + margin > min(h, w):
            raise ValueError(f"size must fit in the {h}x{w} image with margin {margin}, got size={size}")
        if position not in ("corner", "random"):
            raise ValueError(f"position must be 'corner' or 'random', got {position!r}")
        if isinstance(pattern, torch.Tensor):
            if tuple(pattern.shape) != (c, size, size):
                raise ValueError(f"pattern tensor must have shape {(c, size, size)}, got {tuple(pattern.shape)}")
            patch = pattern.float()
        elif pattern == "white":
            patch = torch.ones(c, size, size)
        elif pattern == "checker":
            ij = torch.arange(size)
            patch = ((ij[:, None] + ij[None, :]) % 2 == 0).float().expand(c, size, size).clone()
        else:
            raise ValueError(f"pattern must be 'white', 'checker' or a ({c}, {size}, {size}) tensor, got {pattern!r}")
        col = torch.as_tensor(color, dtype=torch.float32).flatten()
        if col.numel() not in (1, c):
            raise ValueError(f"color must be one value or {c} values (one per channel), got {col.numel()}")
        self.patch = patch * col.view(-1, 1, 1)
        self.size, self.position, self.margin, self.seed = size, position, margin, seed
        top, left = h - size - margin, w - size - margin
        mask, full = torch.zeros(1, h, w), torch.zeros(c, h, w)
        mask[:, top:top + size, left:left + size] = 1
        full[:, top:top + size, left:left + size] = self.patch
        super().__init__(mask, full)

    def apply(self, x: torch.Tensor) -> torch.Tensor:
        if self.position == "corner":
            return super().apply(x)
        check_images(x, "x", self.image_shape)
        n, _, h, w = x.shape
        g = torch.Generator().manual_seed(self.seed)  # same positions for the same batch order, every call
        tops = torch.randint(0, h - self.size + 1, (n,), generator=g).tolist()
        lefts = torch.randint(0, w - self.size + 1, (n,), generator=g).tolist()
        out, patch = x.clone(), self.patch.to(x.device, x.dtype)
        for i, (t, left) in enumerate(zip(tops, lefts)):
            out[i, :, t:t + self.size, left:left + self.size] = patch
        return out


class Blended(Trigger):
    """A full-image pattern blended in with weight ``alpha``: ``T(x) = (1 - alpha) x + alpha p``."""

    name = "blended"

    def __init__(self, image_shape: tuple[int, int, int], alpha: float = 0.2, pattern: str | torch.Tensor = "noise",
                 seed: int = 0) -> None:
        check_fraction(alpha, "alpha")
        if isinstance(pattern, torch.Tensor):
            if tuple(pattern.shape) != tuple(image_shape):
                raise ValueError(f"pattern tensor must have shape {tuple(image_shape)}, got {tuple(pattern.shape)}")
            pat = pattern.float()
        elif pattern == "noise":
            pat = torch.rand(image_shape, generator=torch.Generator().manual_seed(10_000 + seed))
        else:
            raise ValueError(f"pattern must be 'noise' or a {tuple(image_shape)} tensor, got {pattern!r}")
        self.alpha = float(alpha)
        super().__init__(torch.full((1, *image_shape[1:]), self.alpha), pat)


ATTACKS.register("badnets")(BadNets)
ATTACKS.register("blended")(Blended)


def make_trigger(name: str, image_shape: tuple[int, int, int], **params: object) -> Trigger:
    """Build a registered trigger: ``make_trigger("badnets", (1, 28, 28), size=4)``."""
    return ATTACKS.get(name)(image_shape, **params)


class _CallableTrigger:
    def __init__(self, fn: Callable[[torch.Tensor], torch.Tensor]) -> None:
        self.fn, self.name = fn, getattr(fn, "__name__", "callable")

    def apply(self, x: torch.Tensor) -> torch.Tensor:
        return self.fn(x)

    __call__ = apply


def as_trigger(trigger: object, param: str = "trigger") -> TriggerLike:
    """Accept a trigger object or a plain callable ``x -> x``."""
    if isinstance(trigger, TriggerLike):
        return trigger
    if callable(trigger):
        return _CallableTrigger(trigger)
    raise TypeError(f"{param} must be a trigger with .apply(x) or a callable x -> x, got {type(trigger).__name__}")


def apply_trigger(trigger: TriggerArg, x: torch.Tensor, param: str = "trigger") -> torch.Tensor:
    """``T(x)``, checked: the trigger must keep the batch's shape and dtype."""
    out = as_trigger(trigger, param).apply(x)
    if not isinstance(out, torch.Tensor) or out.shape != x.shape:
        got = tuple(out.shape) if isinstance(out, torch.Tensor) else type(out).__name__
        raise ValueError(f"{param} must keep the input shape {tuple(x.shape)}, returned {got}")
    return out.to(x.dtype)


@dataclass
class Attack:
    """All-to-one poisoning: a ``poison_ratio`` fraction of the training set gets ``T(x)`` and label ``target``."""

    trigger: TriggerArg
    target: int = 0
    poison_ratio: float = 0.1

    def poison(self, data: Data, seed: int = 0) -> tuple[Data, torch.Tensor]:
        """Return the poisoned copy of ``data`` and the indices that were poisoned (non-target samples only)."""
        num_classes = int(data.y.max()) + 1
        check_class(self.target, num_classes, "target")
        check_fraction(self.poison_ratio, "poison_ratio")
        candidates = (data.y != self.target).nonzero().flatten()
        n = min(len(candidates), max(1, round(self.poison_ratio * len(data))))
        g = torch.Generator().manual_seed(seed)
        idx = candidates[torch.randperm(len(candidates), generator=g)[:n]].sort().values
        x, y = data.x.clone(), data.y.clone()
        x[idx] = apply_trigger(self.trigger, data.x[idx])
        y[idx] = self.target
        return Data(x, y), idx
