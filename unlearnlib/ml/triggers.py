"""Triggers: what every attack, metric, edit and defense applies to images, and the trigger file format.

A trigger is any object with ``apply(x) -> x`` on image batches (:class:`TriggerLike`); a plain callable
``x -> x`` works wherever a trigger is expected (:func:`as_trigger`). Patch and blend triggers write

    T(x) = (1 - m) * x + m * p                                        (trigger equation)

with a mask ``m`` in [0, 1] and a pattern ``p`` (both ``(C, H, W)``), exposed for plots (:class:`Trigger`);
:func:`paste` is ``Π``, the one way a patch is pasted at a position (the recovered triggers use it too). Triggers
that are not of this form (WaNet's warp) subclass :class:`BaseTrigger` only; its hooks are how an attack is
planted (:meth:`unlearnlib.attacks.Attack.plant`).

A trigger file (``torch.save`` of a dict, read with ``weights_only=True``) holds ``T(x) = (1 - m) x + m p`` as
``{"mask": m, "pattern": p}``: ``m`` of shape ``(1, H, W)`` or ``(C, H, W)``, ``p`` of shape ``(C, H, W)``, values
in [0, 1] (:func:`load_trigger`, :func:`save_trigger`).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Protocol, Union, runtime_checkable

import torch
from torch import nn

from ..core.cache import atomic_write
from ..core.checks import check_images
from ..core.weights import torch_load
from ..data import Data

TRIGGER_KEYS = ("mask", "pattern")


@runtime_checkable
class TriggerLike(Protocol):
    def apply(self, x: torch.Tensor) -> torch.Tensor: ...


TriggerArg = Union[TriggerLike, Callable[[torch.Tensor], torch.Tensor]]


class BaseTrigger:
    """A trigger ``T`` with the planting hooks; subclasses implement :meth:`apply`."""

    name = "trigger"
    needs_clean_model = False
    cross_ratio = 0.0
    repoison_each_epoch = False

    def __init__(self, image_shape: tuple[int, int, int]) -> None:
        if len(image_shape) != 3:
            raise ValueError(f"image_shape must be (C, H, W), got {tuple(image_shape)}")
        self._image_shape = tuple(int(s) for s in image_shape)

    @property
    def image_shape(self) -> tuple[int, int, int]:
        return self._image_shape  # type: ignore[return-value]

    def apply(self, x: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        return self.apply(x)

    def prepare(self, clean: nn.Module, data: Data, target: int, seed: int) -> None:
        """Fit the trigger to the ``clean`` model on the attacker's ``data`` (only if ``needs_clean_model``)."""

    def cross(self, x: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        """``x`` under a randomly perturbed trigger, to be kept at its true label (only if ``cross_ratio > 0``)."""
        raise NotImplementedError(f"{type(self).__name__} has no cross (noise) samples")

    def co_optimise(self, model: nn.Module, data: Data, target: int, seed: int) -> bool:
        """Update the trigger against the current ``model`` before a training epoch; True if it changed."""
        return False

    def state_dict(self) -> dict[str, torch.Tensor]:
        """The tensors the trigger learned (cached with the backdoored model); fixed triggers have none."""
        return {}

    def load_state_dict(self, state: dict[str, torch.Tensor]) -> None:
        if state:
            raise ValueError(f"{type(self).__name__} has no learned state, got keys {sorted(state)}")

    def __repr__(self) -> str:
        return f"{type(self).__name__}(shape={self.image_shape})"


class Trigger(BaseTrigger):
    """``T(x) = (1 - m) x + m p`` with a fixed mask and pattern."""

    def __init__(self, mask: torch.Tensor, pattern: torch.Tensor) -> None:
        if mask.dim() != 3 or pattern.dim() != 3:
            raise ValueError("mask and pattern must be (C, H, W) tensors")
        super().__init__(tuple(pattern.shape))  # type: ignore[arg-type]
        self.mask = mask.float().clamp(0, 1)
        self.pattern = pattern.float().clamp(0, 1)

    def apply(self, x: torch.Tensor) -> torch.Tensor:
        check_images(x, "x", self.image_shape)
        m, p = self.mask.to(x.device, x.dtype), self.pattern.to(x.device, x.dtype)
        return (1 - m) * x + m * p

    __call__ = apply


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


def paste(x: torch.Tensor, patches: torch.Tensor, tops: torch.Tensor, lefts: torch.Tensor) -> torch.Tensor:
    """``Π(x, p)``: replace the k×k window at ``(tops[i], lefts[i])`` of image i by ``patches[i]`` (differentiable)."""
    n, c, h, w = x.shape
    k = patches.shape[-1]
    rows = torch.arange(h, device=x.device)[None, :] - tops[:, None].to(x.device)  # (n, h)
    cols = torch.arange(w, device=x.device)[None, :] - lefts[:, None].to(x.device)
    inside = ((rows >= 0) & (rows < k))[:, :, None] & ((cols >= 0) & (cols < k))[:, None, :]  # (n, h, w)
    r, q = rows.clamp(0, k - 1), cols.clamp(0, k - 1)
    full = patches[torch.arange(n, device=x.device)[:, None, None, None], torch.arange(c, device=x.device)[None, :,
                   None, None], r[:, None, :, None], q[:, None, None, :]]
    return torch.where(inside[:, None], full, x)


def load_trigger(path: str | Path, image_shape: tuple[int, int, int], param: str = "trigger_file") -> Trigger:
    """The trigger ``{"mask", "pattern"}`` saved at ``path``, checked against the data's ``(C, H, W)``."""
    blob = torch_load(Path(path), param)
    if not isinstance(blob, Mapping) or not all(isinstance(blob.get(k), torch.Tensor) for k in TRIGGER_KEYS):
        got = sorted(map(str, blob)) if isinstance(blob, Mapping) else type(blob).__name__
        raise ValueError(f"{param}={str(path)!r} must hold a dict of tensors {{'mask': (1|C, H, W), 'pattern': "
                         f"(C, H, W)}} saved with torch.save, got {got}")
    mask, pattern = blob["mask"].float(), blob["pattern"].float()
    c, h, w = image_shape
    if tuple(pattern.shape) != (c, h, w) or mask.dim() != 3 or mask.shape[0] not in (1, c) or mask.shape[1:] != (h, w):
        raise ValueError(f"{param}={str(path)!r}: mask {tuple(mask.shape)} and pattern {tuple(pattern.shape)} do not "
                         f"fit the data's images; expected mask (1, {h}, {w}) or ({c}, {h}, {w}) and pattern "
                         f"({c}, {h}, {w})")
    for name, t in (("mask", mask), ("pattern", pattern)):
        if not torch.isfinite(t).all() or float(t.min()) < 0 or float(t.max()) > 1:
            raise ValueError(f"{param}={str(path)!r}: {name} must hold finite values in [0, 1]")
    return Trigger(mask, pattern)


def save_trigger(trigger: Trigger, path: str | Path) -> None:
    """Write a trigger's mask and pattern in the trigger-file format (atomically)."""
    if not isinstance(trigger, Trigger) or getattr(trigger, "position", "corner") != "corner":
        raise ValueError(f"trigger must be a fixed-mask trigger T(x) = (1 - m) x + m p (unlearnlib.Trigger), "
                         f"got {trigger!r}: a trigger file holds one mask and one pattern")
    blob = {"mask": trigger.mask.detach().cpu().contiguous(), "pattern": trigger.pattern.detach().cpu().contiguous()}
    atomic_write(Path(path), lambda p: torch.save(blob, p))
