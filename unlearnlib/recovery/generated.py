"""A recovered trigger *distribution*: ``Π(x, G(z) + ε)`` with fresh noise (and patch positions) per image.

``Π`` (:func:`~unlearnlib.ml.triggers.paste`) replaces a k×k window of ``x`` by the generated patch; a
full-image generator blends its pattern in with its learned weight; a warp generator *[ours]* moves the pixels by the
smooth flow of its control points (:func:`warp_smooth`: WaNet's warp, Nguyen & Tran 2021, with the control grid
generated instead of fixed, bounded by ``max_warp`` pixels as ``max_blend`` bounds a blend).
:class:`GeneratedTrigger` is what trigger recovery hands to unlearning and editing; :class:`TriggerEnsemble` mixes
several (one per β, as MESA does).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from ..core.checks import check_images, check_positive_int
from ..ml.triggers import paste
from .networks import TriggerGenerator, sample_noise


def warp_smooth(x: torch.Tensor, control: torch.Tensor, max_shift: float) -> torch.Tensor:
    """Warp image i of ``x`` by the smooth flow of its control points ``control[i]`` (``(2, k, k)`` in [0, 1];
    differentiable): the displacement (dx, dy) is ``max_shift · (2 p - 1)`` pixels at the control points, bicubic
    in between, sampled bilinearly with zeros outside the image."""
    flow = flow_field(control.to(x.dtype), max_shift, x.shape[-2:])
    n, _, h, w = x.shape
    scale = torch.tensor([2 / max(w - 1, 1), 2 / max(h - 1, 1)], device=x.device, dtype=x.dtype).view(1, 2, 1, 1)
    ys, xs = torch.meshgrid(torch.linspace(-1, 1, h, device=x.device, dtype=x.dtype),
                            torch.linspace(-1, 1, w, device=x.device, dtype=x.dtype), indexing="ij")
    grid = torch.stack([xs, ys])[None] + flow * scale  # (n, 2, H, W) in grid_sample's (x, y) order
    out = F.grid_sample(x, grid.permute(0, 2, 3, 1).clamp(-1, 1), mode="bilinear", padding_mode="zeros",
                        align_corners=True)
    return out.clamp(0, 1)


def flow_field(control: torch.Tensor, max_shift: float, size: tuple[int, int]) -> torch.Tensor:
    """The displacement in pixels ``(n, 2, H, W)`` (dx, dy) of control points ``(n, 2, k, k)`` in [0, 1]."""
    return F.interpolate((2 * control - 1) * max_shift, size=tuple(size), mode="bicubic", align_corners=True)


class GeneratedTrigger:
    """A recovered trigger distribution: ``apply(x)`` draws fresh ``z`` (and positions) for every image.

    Draws come from a CPU generator seeded with ``seed`` at each call (the same batch gets the same triggers,
    so metrics are reproducible); :meth:`apply_fresh` takes an explicit generator for new draws per batch.
    """

    name = "generated"

    def __init__(self, generator: TriggerGenerator, position_probs: torch.Tensor | None = None, seed: int = 0,
                 target: int | None = None) -> None:
        self.generator = generator.eval()
        c, h, w = generator.image_shape
        k = generator.patch_size
        if k is not None and position_probs is None:
            position_probs = torch.ones((h - k + 1) * (w - k + 1))
        self.position_probs = None if position_probs is None else position_probs.float().cpu() / position_probs.sum()
        self.seed, self.target = seed, target

    @property
    def image_shape(self) -> tuple[int, int, int]:
        return self.generator.image_shape

    def positions(self, n: int, gen: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
        _, _, w = self.image_shape
        idx = torch.multinomial(self.position_probs, n, replacement=True, generator=gen)
        span = w - self.generator.patch_size + 1
        return idx // span, idx % span

    def apply_fresh(self, x: torch.Tensor, gen: torch.Generator, noise_std: float = 0.0,
                    grad: bool = False) -> torch.Tensor:
        """``Π(x, G(z) + ε)`` with ``z``, positions and ``ε`` drawn from ``gen``."""
        with torch.set_grad_enabled(grad):
            dev = next(self.generator.parameters()).device
            z = sample_noise(len(x), gen, dev)
            p = self.generator(z)
            if noise_std:
                p = (p + noise_std * torch.randn(p.shape, generator=gen).to(dev)).clamp(0, 1)
            p = p.to(x.device, x.dtype)
            if self.generator.warp:
                return warp_smooth(x, p, self.generator.max_warp)
            if self.generator.blend:
                a = self.generator.blend_weight().to(x.device, x.dtype)
                return (1 - a) * x + a * p
            tops, lefts = self.positions(len(x), gen)
            return paste(x, p, tops, lefts)

    def apply(self, x: torch.Tensor) -> torch.Tensor:
        check_images(x, "x", self.image_shape)
        was = self.generator.training
        self.generator.eval()
        try:
            return self.apply_fresh(x, torch.Generator().manual_seed(self.seed)).detach()
        finally:
            self.generator.train(was)

    __call__ = apply

    @torch.no_grad()
    def _draw(self, n: int, gen: torch.Generator) -> torch.Tensor:
        """``G(z)`` for ``n`` noise draws from ``gen``, in eval mode, on the CPU."""
        was = self.generator.training
        self.generator.eval()
        try:
            return self.generator(sample_noise(n, gen, next(self.generator.parameters()).device)).cpu()
        finally:
            self.generator.train(was)

    @torch.no_grad()
    def examples(self, n: int = 8, seed: int | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """``(masks (n,1,H,W), patterns (n,C,H,W))`` of ``n`` draws, as ``T(x) = (1-m) x + m p`` for plots (a warp
        has neither: see :attr:`flow`)."""
        check_positive_int(n, "n")
        if self.generator.warp:
            raise ValueError("a warp trigger has no mask and pattern; plot its flow field (.flow) instead")
        gen = torch.Generator().manual_seed(self.seed if seed is None else seed)
        c, h, w = self.image_shape
        p = self._draw(n, gen)
        if self.generator.blend:
            return self.generator.blend_weight().cpu().expand(n, 1, h, w).clone(), p
        tops, lefts = self.positions(n, gen)
        ones = torch.ones(n, 1, *p.shape[-2:])
        return paste(torch.zeros(n, 1, h, w), ones, tops, lefts), paste(torch.zeros(n, c, h, w), p, tops, lefts)

    @property
    def kind(self) -> str:
        """``"patch"``, ``"blend"`` or ``"warp"``."""
        return self.generator.kind

    @property
    def flow(self) -> torch.Tensor:
        """A warp's mean displacement over 64 draws, ``(2, H, W)`` in pixels as (dx, dy) (for plots, as
        :attr:`unlearnlib.attacks.WaNet.flow`)."""
        if not self.generator.warp:
            raise ValueError(f"only a warp trigger has a flow field, this one is a {self.kind}")
        p = self._draw(64, torch.Generator().manual_seed(self.seed)).float()
        return flow_field(p, self.generator.max_warp, self.image_shape[1:]).mean(0)

    def __repr__(self) -> str:
        g = self.generator
        kind = {"patch": f"patch {g.patch_size}", "warp": f"warp {g.warp_grid}"}.get(g.kind, g.kind)
        return f"GeneratedTrigger({kind}, target={self.target})"


class TriggerEnsemble:
    """Several recovered triggers (e.g. one per β): image i of a batch uses member ``i mod len(members)``."""

    name = "generated-ensemble"

    def __init__(self, members: list[GeneratedTrigger]) -> None:
        if not members:
            raise ValueError("members must hold at least one GeneratedTrigger")
        self.members = members
        self.target = members[0].target

    @property
    def image_shape(self) -> tuple[int, int, int]:
        return self.members[0].image_shape

    def _split(self, x: torch.Tensor, fn) -> torch.Tensor:
        out = x.clone()
        for j, m in enumerate(self.members):
            idx = torch.arange(j, len(x), len(self.members), device=x.device)
            if len(idx):
                out[idx] = fn(m, x[idx]).to(out.dtype)
        return out

    def apply(self, x: torch.Tensor) -> torch.Tensor:
        return self._split(x, lambda m, xb: m.apply(xb))

    __call__ = apply

    def apply_fresh(self, x: torch.Tensor, gen: torch.Generator, noise_std: float = 0.0,
                    grad: bool = False) -> torch.Tensor:
        return self._split(x, lambda m, xb: m.apply_fresh(xb, gen, noise_std, grad))

    def examples(self, n: int = 8, seed: int | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        parts = [m.examples(n, seed) for m in self.members if not m.generator.warp]
        if not parts:
            raise ValueError("a warp trigger has no mask and pattern; plot a member's flow field (.flow) instead")
        return torch.cat([p[0] for p in parts])[:n], torch.cat([p[1] for p in parts])[:n]
