"""WaNet (Nguyen & Tran, ICLR 2021): an invisible, smooth warp of the whole image.

With the identity sampling grid ``G`` (coordinates in [-1, 1]) and a ``k x k x 2`` control grid ``P`` drawn
uniformly from [-1, 1] and normalised by its mean absolute value,

    T(x) = grid_sample(x, clip(G + s * U(P) / H, -1, 1))                                (warp)

where ``U`` is bicubic upsampling to ``H x W`` and ``s`` the strength (k = 4, s = 0.5 on MNIST in the paper).
Noise mode: ``cross_ratio`` times as many other training samples are warped by ``G + s U(P) / H + e / H``
(``e`` uniform in [-1, 1] per pixel, drawn afresh per sample) and keep their true label, so the model learns the
exact warp and not "any warp". The flow field ``s U(P) / 2 * (H - 1) / H`` in pixels is :attr:`WaNet.flow`.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from ..core.checks import check_fraction, check_images, check_positive_int, check_positive_number
from ..core.registry import ATTACKS
from ..ml.triggers import BaseTrigger


@ATTACKS.register("wanet")
class WaNet(BaseTrigger):
    """The (warp) trigger with a ``k x k`` control grid of strength ``s``, drawn from ``seed``."""

    name = "wanet"
    repoison_each_epoch = True

    def __init__(self, image_shape: tuple[int, int, int], k: int = 4, s: float = 0.5, cross_ratio: float = 2.0,
                 seed: int = 0) -> None:
        super().__init__(image_shape)
        _, h, w = self.image_shape
        check_positive_int(k, "k")
        if k < 2 or k > min(h, w):
            raise ValueError(f"k must be an integer in [2, {min(h, w)}] (control points per side), got {k!r}")
        check_positive_number(s, "s")
        check_fraction(cross_ratio, "cross_ratio", low_open=False, high=10.0)
        self.k, self.s, self.cross_ratio, self.seed = k, float(s), float(cross_ratio), seed
        g = torch.Generator().manual_seed(30_000 + seed)
        p = torch.rand(1, 2, k, k, generator=g) * 2 - 1
        p = p / p.abs().mean()
        self.noise_grid = F.interpolate(p, size=(h, w), mode="bicubic", align_corners=True).permute(0, 2, 3, 1)[0]
        ys, xs = torch.meshgrid(torch.linspace(-1, 1, h), torch.linspace(-1, 1, w), indexing="ij")
        self.identity_grid = torch.stack([xs, ys], -1)  # (H, W, 2): grid_sample's (x, y) order
        self.grid = (self.identity_grid + self.s * self.noise_grid / h).clamp(-1, 1)

    @property
    def flow(self) -> torch.Tensor:
        """The displacement of every sampling point in pixels, ``(2, H, W)`` as (dx, dy) (for plots)."""
        _, h, w = self.image_shape
        d = self.grid - self.identity_grid
        return torch.stack([d[..., 0] * (w - 1) / 2, d[..., 1] * (h - 1) / 2])

    def _warp(self, x: torch.Tensor, grid: torch.Tensor) -> torch.Tensor:
        out = F.grid_sample(x, grid.to(x.device, x.dtype), mode="bilinear", padding_mode="zeros", align_corners=True)
        return out.clamp(0, 1)

    def apply(self, x: torch.Tensor) -> torch.Tensor:
        check_images(x, "x", self.image_shape)
        return self._warp(x, self.grid.unsqueeze(0).expand(len(x), -1, -1, -1))

    __call__ = apply

    def cross(self, x: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        """Noise mode: each sample warped by the trigger's grid plus its own uniform perturbation ``e / H``."""
        check_images(x, "x", self.image_shape)
        _, h, w = self.image_shape
        e = torch.rand(len(x), h, w, 2, generator=generator) * 2 - 1
        return self._warp(x, (self.grid.unsqueeze(0) + e / h).clamp(-1, 1))

    def __repr__(self) -> str:
        return f"WaNet(k={self.k}, s={self.s}, cross_ratio={self.cross_ratio}, shape={self.image_shape})"
