"""A recovered trigger *distribution*: ``Π(x, G(z) + ε)`` with fresh noise (and patch positions) per image.

``Π`` (:func:`~unlearnlib.ml.triggers.paste`) replaces a k×k window of ``x`` by the generated patch; a
full-image generator blends its pattern in with its learned weight. :class:`GeneratedTrigger` is what trigger
recovery hands to unlearning and editing; :class:`TriggerEnsemble` mixes several (one per β, as MESA does).
"""

from __future__ import annotations

import torch

from ..core.checks import check_images, check_positive_int
from ..ml.triggers import paste
from .networks import TriggerGenerator, sample_noise


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
    def examples(self, n: int = 8, seed: int | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """``(masks (n,1,H,W), patterns (n,C,H,W))`` of ``n`` draws, as ``T(x) = (1-m) x + m p`` for plots."""
        check_positive_int(n, "n")
        gen = torch.Generator().manual_seed(self.seed if seed is None else seed)
        c, h, w = self.image_shape
        was = self.generator.training
        self.generator.eval()
        p = self.generator(sample_noise(n, gen, next(self.generator.parameters()).device)).cpu()
        self.generator.train(was)
        if self.generator.blend:
            return self.generator.blend_weight().cpu().expand(n, 1, h, w).clone(), p
        tops, lefts = self.positions(n, gen)
        ones = torch.ones(n, 1, *p.shape[-2:])
        return paste(torch.zeros(n, 1, h, w), ones, tops, lefts), paste(torch.zeros(n, c, h, w), p, tops, lefts)

    def __repr__(self) -> str:
        kind = "blend" if self.generator.blend else f"patch {self.generator.patch_size}"
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
        parts = [m.examples(n, seed) for m in self.members]
        return torch.cat([p[0] for p in parts])[:n], torch.cat([p[1] for p in parts])[:n]
