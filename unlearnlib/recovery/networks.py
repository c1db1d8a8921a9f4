"""The two networks of MESA (Qiao et al. 2019): the trigger generator ``G(z)`` and MINE's statistics network.

``G`` maps noise ``z ~ U[0,1)^64`` to a k×k×C patch, or, for full-image triggers, a C×H×W pattern and a learned
blend weight ``a = a_max · sigmoid(w)``, or *[ours]*, for a warp, the k×k×2 control points of a smooth flow
(applied by :func:`~unlearnlib.recovery.generated.warp_smooth`, at most ``max_warp`` pixels); ``T(z, y)`` estimates
the mutual information ``I(z; G(z) + ε)`` with the Donsker-Varadhan bound (see :mod:`unlearnlib.recovery.mesa` for
the loss they are trained with).
"""

from __future__ import annotations

import math

import torch
from torch import nn

from ..core.checks import check_fraction, check_positive_int, check_positive_number

NOISE_DIM = 64
WARP_GRID, MAX_WARP = 4, 1.5  # [ours] a warp generator's control points per side and largest shift in pixels


class TriggerGenerator(nn.Module):
    """``G(z)``: 4 chunks of ``z`` enter a 4-layer MLP as skip inputs (BatchNorm, LeakyReLU 0.2, sigmoid out)."""

    def __init__(self, image_shape: tuple[int, int, int], patch_size: int | None = 3, hidden: int = 2048,
                 chunks: int = 4, max_blend: float = 0.3, warp_grid: int | None = None,
                 max_warp: float = MAX_WARP) -> None:
        super().__init__()
        c, h, w = image_shape
        if warp_grid is not None:
            if patch_size is not None:
                raise ValueError(f"a warp generator has no patch: patch_size must be None, got {patch_size}")
            check_positive_int(warp_grid, "warp_grid", minimum=2)
            if warp_grid > min(h, w):
                raise ValueError(f"warp_grid must fit in the {h}x{w} image, got warp_grid={warp_grid}")
            check_positive_number(max_warp, "max_warp")
        if patch_size is not None:
            check_positive_int(patch_size, "patch_size")
            if patch_size > min(h, w):
                raise ValueError(f"patch_size must fit in the {h}x{w} image, got patch_size={patch_size}")
        check_positive_int(hidden, "hidden")
        check_fraction(max_blend, "max_blend")
        if NOISE_DIM % chunks:
            raise ValueError(f"chunks must divide the noise size {NOISE_DIM}, got {chunks}")
        self.image_shape, self.patch_size, self.max_blend = tuple(image_shape), patch_size, float(max_blend)
        self.warp_grid, self.max_warp = warp_grid, float(max_warp)
        self.out_shape = ((c, patch_size, patch_size) if patch_size is not None else
                          (2, warp_grid, warp_grid) if warp_grid is not None else (c, h, w))
        self.chunk = NOISE_DIM // chunks
        dims = [self.chunk] + [hidden + self.chunk] * (chunks - 1)
        self.hidden = nn.ModuleList(
            nn.Sequential(nn.Linear(d, hidden), nn.BatchNorm1d(hidden), nn.LeakyReLU(0.2)) for d in dims[:-1])
        self.out = nn.Linear(dims[-1], int(torch.tensor(self.out_shape).prod()))
        self.blend_logit = nn.Parameter(torch.zeros(())) if patch_size is None and warp_grid is None else None

    @property
    def blend(self) -> bool:
        return self.patch_size is None and self.warp_grid is None

    @property
    def warp(self) -> bool:
        return self.warp_grid is not None

    @property
    def kind(self) -> str:
        """``"patch"``, ``"blend"`` or ``"warp"``."""
        return "warp" if self.warp else "blend" if self.blend else "patch"

    def blend_weight(self) -> torch.Tensor:
        """``a = a_max · sigmoid(w)`` (full-image mode only)."""
        if self.blend_logit is None:
            raise ValueError("blend_weight exists only for blend generators (patch_size=None, warp_grid=None)")
        return self.max_blend * torch.sigmoid(self.blend_logit)

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        parts = z.split(self.chunk, dim=1)
        h = self.hidden[0](parts[0])
        for layer, zi in zip(self.hidden[1:], parts[1:-1]):
            h = layer(torch.cat([h, zi], 1))
        return torch.sigmoid(self.out(torch.cat([h, parts[-1]], 1))).view(-1, *self.out_shape)


class Mine(nn.Module):
    """MINE statistics network ``T(z, y)`` with the moving average of ``E[exp T]`` for the bias correction."""

    def __init__(self, y_dim: int, hidden: int = 256, rate: float = 0.001) -> None:
        super().__init__()
        self.rate = check_fraction(rate, "mine_rate")
        self.net = nn.Sequential(nn.Linear(NOISE_DIM + y_dim, hidden), nn.ELU(), nn.Linear(hidden, hidden), nn.ELU(),
                                 nn.Linear(hidden, 1))
        self.register_buffer("ma_et", torch.ones(()))

    def forward(self, z: torch.Tensor, y: torch.Tensor, perm: torch.Tensor | None = None,
                update: bool = True) -> tuple[torch.Tensor, torch.Tensor]:
        """``(Î, surrogate)``: the DV bound and its bias-corrected surrogate (maximise the surrogate).

        Samples of the product of marginals ``p(z)p(y)`` pair ``z`` with ``y[perm]`` (default: a random
        permutation from the global RNG; the batched trainer passes its own, drawn from each job's generator).
        Works under :func:`torch.func.vmap` (one statistics network per stacked job)."""
        y = y.flatten(1)
        if perm is None:
            perm = torch.randperm(len(y), device=y.device)
        joint = self.net(torch.cat([z, y], 1)).squeeze(1)
        marg = self.net(torch.cat([z, y[perm]], 1)).squeeze(1).clamp(max=30)
        et = marg.exp()
        if update:
            self.ma_et.mul_(1 - self.rate).add_(self.rate * et.mean().detach())
        mi = joint.mean() - (torch.logsumexp(marg, 0) - math.log(len(y)))
        return mi, joint.mean() - et.mean() / self.ma_et


def sample_noise(n: int, gen: torch.Generator, device: torch.device | str = "cpu") -> torch.Tensor:
    """``z ~ U[0,1)^64``, drawn on the CPU from ``gen`` (device-independent, deterministic)."""
    return torch.rand(n, NOISE_DIM, generator=gen).to(device)
