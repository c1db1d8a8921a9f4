"""Max-entropy trigger recovery (MESA, Qiao et al. 2019; the recovery stage of BAERASE, Liu et al. 2022).

A backdoor is a *distribution* of inputs that flip the model to the target ``t``. MESA models it with a generator
``G`` that maps noise to trigger patterns, trained with

    L_G = -E_x,z[ min( softmax(f(Π(x, G(z) + ε)))_t , β ) ] - α · Î(z; G(z) + ε)        (MESA loss)

with ``z ~ U[0,1)^64``, ``ε ~ N(0, σ²)``, the hinge threshold ``β`` in (0, 1) and the entropy weight ``α``: the
hinge stops rewarding a pattern once it reaches ``β``, so the mutual-information term spreads ``G`` over *all*
working triggers. ``Î`` is the MINE estimate (Belghazi et al. 2018), the Donsker-Varadhan bound

    Î(z; y) = E_p(z,y)[T(z, y)] - log E_p(z)p(y)[exp T(z, y)]                         (DV bound)

whose biased gradient is corrected by dividing by a moving average of ``E[exp T]`` (rate 0.001). ``Π`` pastes a k×k
patch of ``x`` at a position drawn from ``q``: uniform in the authors' code; *[ours]* optionally ``"adaptive"``,
re-estimated after half the steps from a heatmap of the target probability (:func:`position_heatmap`), because a small
CNN with a fully connected head answers its backdoor at one place only. For full-image triggers ``G`` emits a pattern
``p`` and a blend weight ``a = a_max · sigmoid(w)``: ``Π(x, p) = (1 - a) x + a p``; the bound ``a_max`` keeps ``G``
from painting a whole image of class ``t`` (a "trigger" every class has). A warp *[ours]*: ``G`` emits a smooth
flow's control points, ``Π`` moves the pixels along it, at most ``max_warp`` pixels (:mod:`.generated`).

Generators are trained in *jobs* (a target class, a trigger kind, a seed, a β): :func:`train_generators` trains any
number as one batched model (:class:`~unlearnlib.recovery.stacked.Stack`), one forward of the victim per step; each
job draws all its randomness from its own seed, so it trains the same alone or batched (up to float rounding).
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Sequence
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn
from tqdm.auto import tqdm

from ..core.checks import (
    check_class,
    check_fraction,
    check_images,
    check_number,
    check_positive_int,
    check_positive_number,
)
from ..core.device import INFERENCE_BATCH, channels_last, forked_seed, progress_enabled
from ..ml.train import descend
from ..ml.triggers import paste
from .generated import GeneratedTrigger, TriggerEnsemble, warp_smooth
from .networks import MAX_WARP, NOISE_DIM, Mine, TriggerGenerator, sample_noise
from .stacked import Stack

__all__ = ["NOISE_DIM", "GeneratedTrigger", "Job", "Mine", "TriggerEnsemble", "TriggerGenerator", "frozen",
           "position_heatmaps", "sample_noise", "train_generator", "train_generators"]


@dataclass(frozen=True)
class Job:
    """One generator to train: for class ``target``, a ``patch_size`` patch (``None``: a full-image blend, or a
    warp with ``warp_grid`` control points per side), all of its random draws from ``seed``, hinge threshold
    ``beta``."""

    target: int
    patch_size: int | None
    seed: int
    beta: float = 0.5
    warp_grid: int | None = None

    @property
    def arch(self) -> tuple[int | None, int | None]:
        """The generator's architecture (jobs of one architecture train as one stack)."""
        return self.patch_size, self.warp_grid


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
def position_heatmaps(model: nn.Module, triggers: Sequence[GeneratedTrigger], x: torch.Tensor,
                      targets: Sequence[int], seeds: Sequence[int], stride: int = 2,
                      chunk: int = INFERENCE_BATCH) -> list[torch.Tensor]:
    """Per trigger j: mean ``softmax(f(Π(x, G_j(z))))_{t_j}`` with the patch at each position, a
    ``(H-k+1, W-k+1)`` map. *[ours]* Probed every ``stride`` pixels (nearest-neighbour filled in between); the
    (trigger, position) pairs of all triggers go through the model together, ``chunk`` images at a time."""
    check_positive_int(stride, "stride")
    if len({t.generator.patch_size for t in triggers}) > 1 or any(t.generator.kind != "patch" for t in triggers):
        raise ValueError("triggers must all be patch triggers of one patch size")
    _, h, w = triggers[0].image_shape
    k = triggers[0].generator.patch_size
    patches = []
    for trig, seed in zip(triggers, seeds):
        g = trig.generator
        was = g.training
        g.eval()
        patches.append(g(sample_noise(len(x), torch.Generator().manual_seed(seed), next(g.parameters()).device)))
        g.train(was)
    p_all = torch.stack(patches).to(x.device, x.dtype)  # (J, n, C, k, k)
    ys, xs_ = torch.arange(0, h - k + 1, stride), torch.arange(0, w - k + 1, stride)
    grid = torch.stack(torch.meshgrid(ys, xs_, indexing="ij"), -1).view(-1, 2)
    rows = torch.cartesian_prod(torch.arange(len(triggers)), torch.arange(len(grid)))  # (job, position) pairs
    tgt = torch.as_tensor(list(targets), device=x.device)
    n, probs = len(x), []
    for part in rows.split(max(1, chunk // n)):
        job, pos = part[:, 0].repeat_interleave(n), grid[part[:, 1]].repeat_interleave(n, 0)
        img = torch.arange(n).repeat(len(part))
        xt = paste(x[img.to(x.device)], p_all[job.to(x.device), img.to(x.device)], pos[:, 0], pos[:, 1])
        prob = F.softmax(model(xt).float(), 1).gather(1, tgt[job.to(x.device)].view(-1, 1)).view(len(part), n)
        probs.append(prob.mean(1).cpu())
    maps = torch.cat(probs).view(len(triggers), len(ys), len(xs_))
    return [m.repeat_interleave(stride, 0)[: h - k + 1].repeat_interleave(stride, 1)[:, : w - k + 1] for m in maps]


def _check_jobs(jobs: Sequence[Job], n_cls: int, image_shape: tuple[int, int, int]) -> None:
    if not jobs or not all(isinstance(j, Job) for j in jobs):
        raise ValueError(f"jobs must be a non-empty list of Job, got {jobs!r}")
    for j in jobs:
        check_class(j.target, n_cls, "target")
        check_fraction(j.beta, "beta", high_closed=False)
        if j.warp_grid is not None and j.patch_size is not None:
            raise ValueError(f"a job is a patch or a warp: got patch_size={j.patch_size}, warp_grid={j.warp_grid}")
        if j.patch_size is not None:
            check_positive_int(j.patch_size, "patch_size")
            if j.patch_size > min(image_shape[1:]):
                raise ValueError(f"patch_size must fit in the {image_shape[1]}x{image_shape[2]} image, "
                                 f"got patch_size={j.patch_size}")


def train_generators(model: nn.Module, x: torch.Tensor, jobs: Sequence[Job], *, hidden: int = 2048, alpha: float = 0.1,
                     lr: float = 2e-4, betas: tuple[float, float] = (0.5, 0.999), batch_size: int = 128,
                     steps: int = 100, noise_std: float = 0.1, mine_rate: float = 0.001, mine_hidden: int = 256,
                     max_blend: float = 0.3, max_warp: float = MAX_WARP, positions: str = "uniform",
                     position_temperature: float = 0.05,
                     position_stride: int = 2, init: Sequence[GeneratedTrigger | None] | None = None,
                     patience: int | None = None, tol: float = 0.005, progress: bool | None = None,
                     desc: str = "generators") -> list[tuple[GeneratedTrigger, dict[str, list[float]]]]:
    """Train one ``G`` (and MINE's ``T``) per job on clean images ``x`` to minimise the MESA loss for the job's
    class, all jobs as one batched model (one stack per patch size); returns ``(trigger, history)`` per job.

    The summed loss ``Σ_j L_G(j)`` is minimised by one Adam over the stacked weights, which is exactly one Adam per
    job. With ``positions="adaptive"`` the position heatmap probes every ``position_stride`` pixels
    (:func:`position_heatmaps`). History per job: ``{"hinge", "mi", "asr"}``, one value per step (asr: the
    fraction of the job's batch classified as its target).
    ``init[j]`` (a trained trigger of the job's kind and size) starts job j from its generator weights and
    patch positions (no heatmap is drawn for it). ``patience`` *[ours]*: stop once no job's attack term (the hinge,
    averaged over steps with rate 0.2) has gained more than ``tol`` for ``patience`` steps (and not before the heatmap
    step, nor before a third of ``steps`` where a job starts without ``init``); None: all ``steps``. ``model`` is
    used frozen and in eval mode. Deterministic under the jobs' seeds; the caller's global RNG state (CPU and CUDA)
    is left as it was.
    """
    check_images(x, "x")
    with torch.no_grad():
        n_cls = int(model.eval()(x[:1]).shape[1])
    _check_jobs(jobs, n_cls, tuple(x.shape[1:]))
    check_number(alpha, "alpha")
    check_positive_number(lr, "lr")
    check_number(noise_std, "noise_std")
    check_positive_number(position_temperature, "position_temperature")
    check_positive_int(position_stride, "position_stride")
    if patience is not None:
        check_positive_int(patience, "patience")
    check_positive_number(tol, "tol")
    init = list(init) if init is not None else [None] * len(jobs)
    if len(init) != len(jobs):
        raise ValueError(f"init must hold one trigger (or None) per job: {len(jobs)} jobs, got {len(init)}")
    for j, t in zip(jobs, init):
        if t is not None and (not isinstance(t, GeneratedTrigger) or (t.generator.patch_size, t.generator.warp_grid)
                              != j.arch):
            raise ValueError(f"init must hold GeneratedTrigger of each job's kind and size ({j.arch}), got {t!r}")
    for name, v in (("steps", steps), ("batch_size", batch_size), ("mine_hidden", mine_hidden), ("hidden", hidden)):
        check_positive_int(v, name)
    check_fraction(max_blend, "max_blend")
    check_positive_number(max_warp, "max_warp")
    if positions not in ("uniform", "adaptive"):
        raise ValueError(f"positions must be 'uniform' or 'adaptive', got {positions!r}")
    dev, shape, bs = x.device, tuple(x.shape[1:]), batch_size
    gens = [torch.Generator().manual_seed(j.seed) for j in jobs]
    trigs, mines = [], []
    for j in jobs:  # weights drawn from each job's own seed, as a lone job would draw them
        with forked_seed(j.seed, dev):
            g = TriggerGenerator(shape, j.patch_size, hidden, max_blend=max_blend, warp_grid=j.warp_grid,
                                 max_warp=max_warp).to(dev)
            mines.append(Mine(int(torch.tensor(g.out_shape).prod()), mine_hidden, mine_rate).to(dev))
        start = init[len(trigs)]
        if start is not None:
            g.load_state_dict(start.generator.state_dict())
        trigs.append(GeneratedTrigger(g, None if start is None else start.position_probs, seed=j.seed,
                                      target=j.target))
    archs = dict.fromkeys(j.arch for j in jobs)
    groups = {k: [i for i, j in enumerate(jobs) if j.arch == k] for k in archs}  # one stack per architecture
    g_stacks = {k: Stack([trigs[i].generator for i in idx]) for k, idx in groups.items()}
    t_stacks = {k: Stack([mines[i] for i in idx]) for k, idx in groups.items()}
    opt_g = torch.optim.Adam([p for s in g_stacks.values() for p in s.parameters()], lr=lr, betas=betas)
    opt_t = torch.optim.Adam([p for s in t_stacks.values() for p in s.parameters()], lr=lr, betas=betas)
    order = [i for idx in groups.values() for i in idx]  # job order of the concatenated victim batch
    tgt = torch.tensor([jobs[i].target for i in order], device=dev)
    beta = torch.tensor([jobs[i].beta for i in order], device=dev).view(-1, 1)
    hist: list[dict[str, list[float]]] = [{"hinge": [], "mi": [], "asr": []} for _ in jobs]
    heat_step = steps // 2 if positions == "adaptive" and any(
        j.patch_size is not None and t is None for j, t in zip(jobs, init)) else -1
    smooth, best, still = None, None, 0  # the early stop (patience) ...
    fresh_steps = steps // 3 if any(t is None for t in init) else 0  # ... after a third of the steps for a new G
    model.eval()
    with frozen(model), channels_last(model):
        for step in tqdm(range(steps), desc=desc, disable=not progress_enabled(progress), leave=False):
            if step == heat_step:
                for k, idx in groups.items():
                    idx = [i for i in idx if init[i] is None]
                    if k[0] is None or not idx:
                        continue
                    g_stacks[k].write_back()
                    heats = position_heatmaps(model, [trigs[i] for i in idx], x[:8], [jobs[i].target for i in idx],
                                              [jobs[i].seed for i in idx], stride=position_stride)
                    for i, heat in zip(idx, heats):
                        trigs[i].position_probs = torch.softmax(heat.flatten() / position_temperature, 0)
            draws = {}
            for i, (job, gen) in enumerate(zip(jobs, gens)):  # every job's draws from its own generator
                out_shape = trigs[i].generator.out_shape
                xb = x[torch.randint(0, len(x), (bs,), generator=gen).to(dev)]
                z, eps = sample_noise(bs, gen, dev), torch.randn(bs, *out_shape, generator=gen).to(dev)
                where = trigs[i].positions(bs, gen) if job.patch_size is not None else None
                draws[i] = (xb, z, eps, where, torch.randperm(bs, generator=gen).to(dev),
                            torch.randperm(bs, generator=gen).to(dev))
            stamped, ys, zs, mi_parts, sur_parts = [], {}, {}, [], []
            for k, idx in groups.items():
                z = torch.stack([draws[i][1] for i in idx])
                y = g_stacks[k](z) + noise_std * torch.stack([draws[i][2] for i in idx])
                p, xb = y.clamp(0, 1), torch.stack([draws[i][0] for i in idx])
                if k[1] is not None:
                    stamped.append(warp_smooth(xb.flatten(0, 1), p.flatten(0, 1), max_warp))
                elif k[0] is None:
                    a = (max_blend * torch.sigmoid(g_stacks[k].params["blend_logit"])).view(-1, 1, 1, 1, 1)
                    stamped.append(((1 - a) * xb + a * p).flatten(0, 1))
                else:
                    tops = torch.cat([draws[i][3][0] for i in idx])
                    lefts = torch.cat([draws[i][3][1] for i in idx])
                    stamped.append(paste(xb.flatten(0, 1), p.flatten(0, 1), tops, lefts))
                mi, sur = t_stacks[k](z, y, torch.stack([draws[i][4] for i in idx]))
                ys[k], zs[k] = y, z
                mi_parts.append(mi)
                sur_parts.append(sur)
            out = model(torch.cat(stamped)).float()
            prob = F.softmax(out, 1).gather(1, tgt.repeat_interleave(bs).view(-1, 1)).view(len(order), bs)
            hinge = torch.minimum(prob, beta).mean(1)
            surrogate = torch.cat(sur_parts)
            descend(opt_g, (-hinge - alpha * surrogate).sum(), f"generator training at step {step}",
                    f"lower lr (now {lr}) or check that the model's outputs are finite")
            opt_t.zero_grad(set_to_none=True)
            t_loss = sum(-t_stacks[k](zs[k], ys[k].detach(), torch.stack([draws[i][5] for i in idx]),
                                      update=False)[1].sum() for k, idx in groups.items())
            t_loss.backward()
            opt_t.step()
            asr = (out.argmax(1) == tgt.repeat_interleave(bs)).float().view(len(order), bs).mean(1)
            for i, h, m, a in zip(order, hinge.tolist(), torch.cat(mi_parts).tolist(), asr.tolist()):
                hist[i]["hinge"].append(h)
                hist[i]["mi"].append(m)
                hist[i]["asr"].append(a)
            h = hinge.detach()
            smooth = h if smooth is None else 0.8 * smooth + 0.2 * h
            still = 0 if best is None or bool((smooth > best + tol).any()) else still + 1
            best = smooth if best is None else torch.maximum(best, smooth)
            if patience is not None and still >= patience and step > heat_step and step >= fresh_steps:
                break
    for s in g_stacks.values():
        s.write_back()
    for t in trigs:
        t.generator.eval()
    return list(zip(trigs, hist))


def train_generator(model: nn.Module, x: torch.Tensor, target: int, *, patch_size: int | None = 3, beta: float = 0.5,
                    seed: int = 0, **kwargs) -> tuple[GeneratedTrigger, dict[str, list[float]]]:
    """One job of :func:`train_generators`: the generator of class ``target`` (same arguments, same result)."""
    return train_generators(model, x, [Job(target, patch_size, seed, beta)], **kwargs)[0]
