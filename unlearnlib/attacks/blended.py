"""Blended (Chen et al. 2017): a full-image pattern blended in, ``T(x) = (1 - alpha) x + alpha p``."""

from __future__ import annotations

import torch

from ..core.checks import check_fraction
from ..core.registry import ATTACKS
from ..ml.triggers import Trigger

STRIPE_PERIOD = 6  # pixels per cycle of the "stripes" pattern


@ATTACKS.register("blended")
class Blended(Trigger):
    """A full-image pattern blended in with weight ``alpha``: ``T(x) = (1 - alpha) x + alpha p``.

    ``pattern``: ``"noise"`` (uniform pixel noise drawn once from ``seed``; the default), ``"stripes"`` *[ours]* (a
    fixed diagonal sine grating of period ``STRIPE_PERIOD`` pixels, the same in every channel: a second fixed,
    structured pattern standing in for the paper's Hello-Kitty image, which is not available offline) or a
    ``(C, H, W)`` tensor."""

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
        elif pattern == "stripes":
            _, h, w = image_shape
            ij = torch.arange(h)[:, None] + torch.arange(w)[None, :]
            pat = (0.5 + 0.5 * torch.sin(2 * torch.pi * ij / STRIPE_PERIOD)).expand(image_shape).clone()
        else:
            raise ValueError(f"pattern must be 'noise', 'stripes' or a {tuple(image_shape)} tensor, got {pattern!r}")
        self.alpha = float(alpha)
        super().__init__(torch.full((1, *image_shape[1:]), self.alpha), pat)
