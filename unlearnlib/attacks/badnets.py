"""BadNets (Gu et al. 2017): a small patch pasted into the image, ``T(x) = (1 - m) x + m p``.

BAERASE's variant (a 3x3 patch of random pixel values pasted at a random position per sample) is
``BadNets(shape, size=3, pattern="random", position="random")``.
"""

from __future__ import annotations

import torch

from ..core.checks import check_images, check_positive_int
from ..core.registry import ATTACKS
from ..ml.triggers import Trigger


@ATTACKS.register("badnets")
class BadNets(Trigger):
    """A ``size`` x ``size`` patch pasted at the bottom-right corner or, per sample, at a random position.

    ``pattern``: ``"white"``, ``"checker"``, ``"random"`` (pixel values drawn once from ``seed``, as in BAERASE)
    or a ``(C, size, size)`` tensor; ``color`` scales it per channel."""

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
        elif pattern == "random":
            patch = torch.rand(c, size, size, generator=torch.Generator().manual_seed(20_000 + seed))
        else:
            raise ValueError(f"pattern must be 'white', 'checker', 'random' or a ({c}, {size}, {size}) tensor, "
                             f"got {pattern!r}")
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

    __call__ = apply
