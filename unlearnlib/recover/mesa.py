"""Max-entropy trigger recovery (MESA, Qiao et al. 2019; the recovery stage of BAERASE, Liu et al. 2022).

A backdoor is not one trigger but a *distribution* of inputs that flip the model to the target ``t``. MESA
models it with a generator ``G`` that maps noise to trigger patterns and is trained so that

    L_G = -E_x,z[ min( softmax(f(Π(x, G(z) + ε)))_t , β ) ] - α · Î(z; G(z) + ε)        (MESA loss)

with ``z ~ U[0,1)^64``, ``ε ~ N(0, σ²)``, the hinge threshold ``β`` in (0, 1) and the entropy weight ``α``. The
hinge stops rewarding a pattern once it reaches ``β``, so the second term -- the mutual information between noise
and pattern, a surrogate of the entropy of the pattern distribution -- spreads ``G`` over *all* working triggers.
``Î`` is the MINE estimate (Belghazi et al. 2018), the Donsker-Varadhan bound

    Î(z; y) = E_p(z,y)[T(z, y)] - log E_p(z)p(y)[exp T(z, y)]                         (DV bound)

whose biased gradient is corrected by dividing by a moving average of ``E[exp T]`` (rate 0.001).

``Π`` (paste) replaces a k×k patch of ``x`` at a position drawn from a distribution ``q`` over positions: uniform
in the authors' code; *[ours]* optionally ``"adaptive"``: after half the steps ``q`` is re-estimated from a
heatmap of the target probability at every position (see :func:`position_heatmap`) because a small CNN with a
fully connected head is not translation invariant -- its backdoor answers at one place only.

For full-image triggers (Blended) ``G`` emits a full-size pattern ``p`` and a learned blend weight ``a``:
``Π(x, p) = (1 - a) x + a p`` with ``a = a_max · sigmoid(w)``. The bound ``a_max`` matters: with ``a`` free, the
generator would paint a whole image of class ``t`` over ``x`` -- a "trigger" every class has, which would make
target search meaningless and unlearning it would erase the target class.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import torch
import torch.nn.functional as F
from torch import nn
from tqdm.auto import tqdm

from ..checks import check_class, check_fraction, check_images, check_number, check_positive_int, check_positive_number
from ..device import forked_seed, progress_enabled
from ..train import descend

NOISE_DIM = 64


class TriggerGenerator(nn.Module):
    """``G(z)``: 4 chunks of ``z`` enter a 4-layer MLP as skip inputs (BatchNorm, LeakyReLU 0.2, sigmoid out)."""

    def __init__(self, image_shape: tuple[int, int, int], patch_size: int | None = 3, hidden: int = 2048,
                 chunks: int = 4, max_blend: float = 0.3) -> None:
        super().__init__()
        c, h, w = image_shape
        if patch_size is not None:
            check_positive_int(patch_size, "patch_size")
            if patch_size > min(h, w):
                raise ValueError(f"patch_size must fit in the {h}x{w} image, got patch_size={patch_size}")
        check_positive_int(hidden, "hidden")
        check_fraction(max_blend, "max_blend")
        if NOISE_DIM % chunks:
            raise ValueError(f"chunks must divide the noise size {NOISE_DIM}, got {chunks}")
        self.image_shape, self.patch_size, self.max_blend = tuple(image_shape), patch_size, float(max_blend)
        self.out_shape = (c, patch_size, patch_size) if patch_size is not None else (c, h, w)
        self.chunk = NOISE_DIM // chunks
        dims = [self.chunk] + [hidden + self.chunk] * (chunks - 1)
        self.hidden = nn.ModuleList(
            nn.Sequential(nn.Linear(d, hidden), nn.BatchNorm1d(hidden), nn.LeakyReLU(0.2)) for d in dims[:-1])
        self.out = nn.Linear(dims[-1], int(torch.tensor(self.out_shape).prod()))
        self.blend_logit = nn.Parameter(torch.zeros(())) if patch_size is None else None

    @property
    def blend(self) -> bool:
        return self.patch_size is None

    def blend_weight(self) -> torch.Tensor:
        """``a = a_max · sigmoid(w)`` (full-image mode only)."""
        if self.blend_logit is None:
            raise ValueError("blend_weight exists only for full-image generators (patch_size=None)")
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

    def forward(self, z: torch.Tensor, y: torch.Tensor, update: bool = True) -> tuple[torch.Tensor, torch.Tensor]:
        """``(Î, surrogate)``: the DV bound and its bias-corrected surrogate (maximise the surrogate)."""
        y = y.flatten(1)
        joint = self.net(torch.cat([z, y], 1)).squeeze(1)
        marg = self.net(torch.cat([z, y[torch.randperm(len(y), device=y.device)]], 1)).squeeze(1).clamp(max=30)
        et = marg.exp()
        if update:
            self.ma_et.mul_(1 - self.rate).add_(self.rate * et.mean().detach())
        mi = joint.mean() - (torch.logsumexp(marg, 0) - torch.log(torch.tensor(float(len(marg)))))
        return mi, joint.mean() - et.mean() / self.ma_et


def sample_noise(n: int, gen: torch.Generator, device: torch.device | str = "cpu") -> torch.Tensor:
    """``z ~ U[0,1)^64``, drawn on the CPU from ``gen`` (device-independent, deterministic)."""
    return torch.rand(n, NOISE_DIM, generator=gen).to(device)


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


@contextlib.contextmanager
def frozen(model: nn.Module) -> Iterator[nn.Module]:
    """``model`` with ``requires_grad=False`` on every parameter, restored afterwards."""
    flags = [p.requires_grad for p in model.parameters()]
    for p in model.parameters():
        p.requires_grad_(False)
    try:
        yield model
    finally:
        for p, f in zip(model.parameters(), flags):
            p.requires_grad_(f)


@torch.no_grad()
def position_heatmap(model: nn.Module, trigger: GeneratedTrigger, x: torch.Tensor, target: int, seed: int = 0,
                     stride: int = 2) -> torch.Tensor:
    """Mean ``softmax(f(Π(x, G(z))))_t`` with the patch at each position: a ``(H-k+1, W-k+1)`` map. *[ours]*

    Probed every ``stride`` pixels (nearest-neighbour filled in between) to keep it cheap.
    """
    check_positive_int(stride, "stride")
    gen = torch.Generator().manual_seed(seed)
    g = trigger.generator
    was = g.training
    g.eval()
    p = g(sample_noise(len(x), gen, next(g.parameters()).device)).to(x.device, x.dtype)
    g.train(was)
    _, h, w = trigger.image_shape
    k = g.patch_size
    ys, xs_ = torch.arange(0, h - k + 1, stride), torch.arange(0, w - k + 1, stride)
    grid = torch.stack(torch.meshgrid(ys, xs_, indexing="ij"), -1).view(-1, 2)
    out = []
    for chunk in grid.split(max(1, 2048 // len(x))):
        tops, lefts = chunk[:, 0].repeat_interleave(len(x)), chunk[:, 1].repeat_interleave(len(x))
        xt = paste(x.repeat(len(chunk), 1, 1, 1), p.repeat(len(chunk), 1, 1, 1), tops, lefts)
        out.append(F.softmax(model(xt).float(), 1)[:, target].view(len(chunk), len(x)).mean(1).cpu())
    coarse = torch.cat(out).view(len(ys), len(xs_))
    return coarse.repeat_interleave(stride, 0)[: h - k + 1].repeat_interleave(stride, 1)[:, : w - k + 1]


def train_generator(model: nn.Module, x: torch.Tensor, target: int, *, patch_size: int | None = 3,
                    hidden: int = 2048, beta: float = 0.5, alpha: float = 0.1, lr: float = 2e-4,
                    betas: tuple[float, float] = (0.5, 0.999), batch_size: int = 128, steps: int = 100,
                    noise_std: float = 0.1, mine_rate: float = 0.001, mine_hidden: int = 256,
                    max_blend: float = 0.3, positions: str = "uniform", position_temperature: float = 0.05,
                    seed: int = 0, progress: bool | None = None) -> tuple[GeneratedTrigger, dict[str, list[float]]]:
    """Train ``G`` (and MINE's ``T``) on clean images ``x`` to minimise the MESA loss for class ``target``.

    Returns the :class:`GeneratedTrigger` and a history ``{"hinge", "mi", "asr"}`` (one value per step; asr is
    the fraction of the batch classified as ``target``). ``model`` is used frozen and in eval mode.
    Deterministic under ``seed``; the caller's global RNG state (CPU and CUDA) is left as it was.
    """
    check_images(x, "x")
    with torch.no_grad():
        n_cls = int(model.eval()(x[:1]).shape[1])
    check_class(target, n_cls, "target")
    check_fraction(beta, "beta", high_closed=False)
    check_number(alpha, "alpha")
    check_positive_number(lr, "lr")
    check_number(noise_std, "noise_std")
    check_positive_number(position_temperature, "position_temperature")
    check_positive_int(steps, "steps")
    check_positive_int(batch_size, "batch_size")
    check_positive_int(mine_hidden, "mine_hidden")
    if positions not in ("uniform", "adaptive"):
        raise ValueError(f"positions must be 'uniform' or 'adaptive', got {positions!r}")
    dev = x.device
    gen = torch.Generator().manual_seed(seed)
    model.eval()
    with forked_seed(seed, dev), frozen(model):  # global draws (weight init, MINE's shuffle) seeded, then restored
        G = TriggerGenerator(tuple(x.shape[1:]), patch_size, hidden, max_blend=max_blend).to(dev)
        mine = Mine(int(torch.tensor(G.out_shape).prod()), mine_hidden, mine_rate).to(dev)
        opt_g = torch.optim.Adam(G.parameters(), lr=lr, betas=betas)
        opt_t = torch.optim.Adam(mine.parameters(), lr=lr, betas=betas)
        trig = GeneratedTrigger(G, seed=seed, target=target)
        hist: dict[str, list[float]] = {"hinge": [], "mi": [], "asr": []}
        for step in tqdm(range(steps), desc=f"generator t={target}", disable=not progress_enabled(progress),
                         leave=False):
            if positions == "adaptive" and patch_size is not None and step == steps // 2:
                heat = position_heatmap(model, trig, x[:8], target, seed)
                trig.position_probs = torch.softmax(heat.flatten() / position_temperature, 0)
            G.train()
            xb = x[torch.randint(0, len(x), (batch_size,), generator=gen).to(dev)]
            z = sample_noise(batch_size, gen, dev)
            y = G(z) + noise_std * torch.randn(batch_size, *G.out_shape, generator=gen).to(dev)
            p = y.clamp(0, 1)
            if G.blend:
                a = G.blend_weight()
                xt = (1 - a) * xb + a * p
            else:
                xt = paste(xb, p, *trig.positions(batch_size, gen))
            out = model(xt).float()
            prob = F.softmax(out, 1)[:, target]
            hinge = prob.clamp(max=beta).mean()
            mi, surrogate = mine(z, y)
            loss = -hinge - alpha * surrogate
            descend(opt_g, loss, f"generator training at step {step}",
                    f"lower lr (now {lr}) or check that the model's outputs are finite")
            opt_t.zero_grad(set_to_none=True)
            (-mine(z, y.detach(), update=False)[1]).backward()
            opt_t.step()
            hist["hinge"].append(float(hinge.detach()))
            hist["mi"].append(float(mi.detach()))
            hist["asr"].append(float((out.argmax(1) == target).float().mean()))
    G.eval()
    return trig, hist
