"""Target identification without being told (MESA's per-class search), and BAERASE's stage 1 (:func:`recover`).

BAERASE's released code is *given* the target; a defender is not.
For every class ``c`` a generator is trained for a short budget to reach ``c`` (the MESA loss), and the class
score is the attack rate its triggers reach on held-out defender images of the *other* classes. A backdoor
target stands out: a small patch or a faint blend cannot turn a clean digit into an arbitrary class, but it can
fire a planted shortcut. Outlyingness is the signed MAD anomaly index (:mod:`unlearnlib.recovery.anomaly`)

    a_c = (s_c - median(s)) / (1.4826 · max(MAD(s), δ))                          (anomaly index)

with the floor ``δ`` *[ours]* because clean classes often all score ~0, making the MAD zero. The target is the
class with the largest ``a_c`` (signed: only a *high* score is suspicious); ``outlier`` says whether it exceeds
``threshold`` (2 by convention).
Trigger kinds are searched in order (``"patch"``, ``"blend"``, then ``"warp"``, a smooth flow of :data:`WARP_GRID`
control points per side, as WaNet's, at most :data:`MAX_WARP` pixels) and the search stops at the first kind that
yields an outlier *[ours]*. A patch is searched at each of :data:`PATCH_SIZES` (3, 6) in turn, smallest first
*[ours]*: the defender does not know the trigger's size, and a 6x6 patch can also draw a smaller one inside it, so
the larger size is tried only where the smaller found no outlier. The K generators of one kind are trained as one
batched model (:func:`~unlearnlib.recovery.mesa.train_generators`): one forward of the victim per step serves every
class. The per-class budget *[ours]*: :data:`SEARCH_STEPS` = 20 Adam steps at :data:`SEARCH_LR` = 3e-3 on
:data:`SEARCH_BATCH` images, the same for every kind and size (the final generator: at most 60 steps at 1e-3 on
:data:`GEN_BATCH`, with ``warm_start`` started from the search's generator of the target).

Why these defaults: docs/decisions/0007-target-search.md and docs/decisions/0014-recovery-budget.md.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import nn

from ..core.checks import check_fraction, check_number, check_positive_int, check_positive_number
from ..core.device import progress_enabled
from ..core.memo import shared_or_compute
from ..data import Data
from ..ml.metrics import predict
from .anomaly import anomaly_index
from .mesa import GeneratedTrigger, Job, TriggerEnsemble, train_generators
from .networks import MAX_WARP, WARP_GRID

KINDS = ("patch", "blend", "warp")
KEEPS = ("best", "all")  # which final trigger kinds recover() keeps (its docstring)
KEEP_RATE = 0.25  # [ours] with keep="all", a kind is kept when its held-out rate reaches this
PATCH_SIZES = (3, 6)  # [ours] searched in this order (module docstring)
OUTLIER_THRESHOLD = 2.0  # a class is an outlier above this anomaly index (the MAD rule of Neural Cleanse) ...
MIN_SCORE = 0.25  # [ours] ... when its triggers also fire on this fraction of the held-out images
SEARCH_STEPS, SEARCH_LR = 20, 3e-3  # [ours] the per-class generators' budget (module docstring)
# [ours] images per generator step in the search and the final generators, and the heatmap's probe spacing
# (docs/decisions/0014-recovery-budget.md)
SEARCH_BATCH, GEN_BATCH, POSITION_STRIDE = 32, 32, 2
# a few steps of every stage, heatmaps every 8 pixels: the smoke profile's and the CPU path tests' budget (it runs
# the code, it does not recover; why the coarse heatmaps: docs/decisions/0012-cpu-speed.md)
SMOKE_RECOVER = {"gen_steps": 5, "search_steps": 2, "hidden": 32, "gen_batch_size": 32, "position_stride": 8}


def proxy_rates(model: nn.Module, triggers: list[Any], heldout: Data, targets: list[int],
                draws: int = 1) -> list[float]:
    """Per trigger j: its attack rate on the held-out images whose label is not ``targets[j]`` (``draws`` copies
    each). All stamped sets go through the model in one pass."""
    parts = [trig.apply(heldout.x[heldout.y != t].repeat(draws, 1, 1, 1)) for trig, t in zip(triggers, targets)]
    pred = predict(model, torch.cat(parts)) if parts else torch.empty(0)
    return [float((p == t).float().mean()) if len(p) else 0.0
            for p, t in zip(pred.split([len(x) for x in parts]), targets)]


def proxy_rate(model: nn.Module, trigger: Any, heldout: Data, target: int, draws: int = 1) -> float:
    """Attack rate of ``trigger`` on the held-out images whose label is not ``target`` (``draws`` copies each)."""
    return proxy_rates(model, [trigger], heldout, [target], draws)[0]


def kind_job(kind: str, size: int | None, target: int, seed: int, beta: float) -> Job:
    """The generator job of a trigger kind: a ``size`` patch, a full-image blend or a :data:`WARP_GRID` warp."""
    if kind not in KINDS:
        raise ValueError(f"kind must be one of {KINDS}, got {kind!r}")
    return Job(target, size if kind == "patch" else None, seed, beta, WARP_GRID if kind == "warp" else None)


def check_patch_sizes(patch_sizes: Any, image_size: int | None = None) -> tuple[int, ...]:
    """``patch_sizes`` as a non-empty tuple of distinct positive ints (each at most ``image_size`` if given)."""
    sizes = (patch_sizes,) if isinstance(patch_sizes, int) and not isinstance(patch_sizes, bool) else patch_sizes
    if not isinstance(sizes, (tuple, list)) or not sizes or len(set(sizes)) != len(sizes) or any(
            isinstance(k, bool) or not isinstance(k, int) or k < 1 for k in sizes):
        raise ValueError(f"patch_sizes must be a non-empty tuple of distinct integers >= 1 (the patch sizes to "
                         f"search, in order), got {patch_sizes!r}")
    if image_size is not None and max(sizes) > image_size:
        raise ValueError(f"patch_sizes={tuple(sizes)}: {max(sizes)} is larger than the {image_size}-pixel images")
    return tuple(sizes)


def check_keep(keep: Any, param: str = "keep") -> str:
    """``keep`` if it is one of :data:`KEEPS` (which final trigger kinds :func:`recover` keeps), else a ValueError
    naming ``param``."""
    if keep not in KEEPS:
        raise ValueError(f"{param} must be one of {KEEPS} (which recovered trigger kinds to keep), got {keep!r}")
    return keep


def variants(kinds: tuple[str, ...], patch_sizes: tuple[int, ...]) -> list[tuple[str, int | None]]:
    """The (kind, generator patch size) pairs to try, in order: each patch size for ``"patch"``, one blend, one
    warp."""
    return [(k, s) for k in kinds for s in (patch_sizes if k == "patch" else (None,))]


def variant_label(kind: str, size: int | None) -> str:
    """``"patch 3"``, ``"blend"``: the name of a (kind, size) pair in scores and rates."""
    return kind if size is None else f"{kind} {size}"


@dataclass
class SearchResult:
    """The identified target, the per-class scores and anomaly indices of the kind that decided.

    The per-class search generators are not kept (each is dropped once scored); :func:`recover` trains the
    final generator for the target.
    """

    target: int
    kind: str
    scores: list[float]
    anomaly: list[float]
    outlier: bool
    seconds: float
    all_scores: dict[str, list[float]] = field(default_factory=dict)
    patch_size: int | None = None
    generator: GeneratedTrigger | None = None  # the target's search generator (the final one starts from it)

    def info(self) -> dict[str, Any]:
        """JSON-ready summary (floats rounded); ``all_scores`` per :func:`variant_label`."""
        return {"target": self.target, "kind": self.kind, "patch_size": self.patch_size, "outlier": self.outlier,
                "scores": [round(s, 4) for s in self.scores], "anomaly": [round(a, 2) for a in self.anomaly],
                "all_scores": {k: [round(s, 4) for s in v] for k, v in self.all_scores.items()}}


def search_target(model: nn.Module, train: Data, heldout: Data, num_classes: int, *,
                  kinds: tuple[str, ...] = KINDS, steps: int = SEARCH_STEPS, lr: float = SEARCH_LR,
                  batch_size: int = SEARCH_BATCH,
                  patch_sizes: tuple[int, ...] = PATCH_SIZES, threshold: float = OUTLIER_THRESHOLD,
                  mad_floor: float = 0.01, min_score: float = MIN_SCORE, beta: float = 0.5,
                  seed: int = 0, progress: bool | None = None, **generator_kwargs: Any) -> SearchResult:
    """Train one generator per class (``steps`` Adam steps at ``lr``, class c seeded ``seed + c``, all classes
    batched) and return the outlying class.

    A class is an outlier when its anomaly index exceeds ``threshold`` *and* its triggers fire on at least
    ``min_score`` of the held-out images *[ours]*: with a few dozen held-out images and the MAD floor, one flipped
    image already makes an anomaly index above 2, while a planted backdoor fires on most images. The (kind, size)
    pairs of :func:`variants` are tried in order and the search stops at the first outlier; an outlier of a later
    pair beats a non-outlier of an earlier one.

    ``generator_kwargs`` go to :func:`~unlearnlib.recovery.mesa.train_generators` (alpha, hidden, max_blend, ...).
    """
    check_positive_int(steps, "search_steps")
    check_positive_number(lr, "search_lr")
    check_positive_int(num_classes, "num_classes", minimum=2)
    check_number(threshold, "threshold")
    check_fraction(min_score, "min_score", low_open=False)
    check_positive_number(mad_floor, "mad_floor")
    if not kinds or any(k not in KINDS for k in kinds):
        raise ValueError(f"kinds must be a non-empty tuple drawn from {KINDS}, got {kinds!r}")
    sizes = check_patch_sizes(patch_sizes, min(train.x.shape[-2:]))
    start = time.perf_counter()
    best: SearchResult | None = None
    all_scores: dict[str, list[float]] = {}
    classes = list(range(num_classes))
    for kind, size in variants(kinds, sizes):
        label = variant_label(kind, size)
        jobs = [kind_job(kind, size, c, seed + c, beta) for c in classes]
        trained = train_generators(model, train.x, jobs, steps=steps, lr=lr, batch_size=batch_size,
                                   positions="adaptive", progress=progress_enabled(progress),
                                   desc=f"target search ({label})", **generator_kwargs)
        scores = proxy_rates(model, [t for t, _ in trained], heldout, classes)
        anomaly = anomaly_index(scores, mad_floor).tolist()
        target = int(torch.tensor(anomaly).argmax())
        all_scores[label] = scores
        outlier = anomaly[target] > threshold and scores[target] >= min_score
        res = SearchResult(target, kind, scores, anomaly, outlier, 0.0, patch_size=size,
                           generator=trained[target][0])
        if best is None or (res.outlier, res.anomaly[res.target]) > (best.outlier, best.anomaly[best.target]):
            best = res
        if res.outlier:
            break
    assert best is not None
    best.seconds = time.perf_counter() - start
    best.all_scores = all_scores
    return best


@dataclass
class Recovery:
    """What stage 1 of BAERASE hands to stage 2: the trigger distribution for the (found or given) target."""

    trigger: GeneratedTrigger | TriggerEnsemble
    target: int
    kind: str
    kind_rates: dict[str, float]
    search: SearchResult | None
    seconds: float
    reused: bool = False  # taken from the shared memo (see :mod:`unlearnlib.core.memo`)
    patch_size: int | None = None  # the generator's patch size (None: a blend)
    also_fires: list[GeneratedTrigger] = field(default_factory=list)  # kinds not kept that reach keep_rate
    final_steps: int = 0  # the steps the final generators ran (early stop: ``gen_patience``)

    def info(self) -> dict[str, Any]:
        out: dict[str, Any] = {"trigger_kind": self.kind, "trigger_patch_size": self.patch_size,
                               "recovery_reused": self.reused, "final_steps": self.final_steps,
                               "kind_rates": {k: round(v, 4) for k, v in self.kind_rates.items()}}
        if self.search is not None:
            s = self.search.info()
            out.update(search_scores=s["scores"], search_anomaly=s["anomaly"], search_outlier=s["outlier"],
                       search_kind=s["kind"], search_patch_size=s["patch_size"],
                       search_seconds=round(self.search.seconds, 3))
        return out


def recover(model: nn.Module, train: Data, heldout: Data, num_classes: int, target: int | None = None, *,
            kinds: tuple[str, ...] = KINDS, patch_sizes: tuple[int, ...] = PATCH_SIZES, hidden: int = 256,
            betas: tuple[float, ...] = (0.5,), gen_alpha: float = 0.1, gen_lr: float = 1e-3, gen_steps: int = 60,
            gen_batch_size: int = GEN_BATCH, search_steps: int = SEARCH_STEPS, search_lr: float = SEARCH_LR,
            search_batch_size: int = SEARCH_BATCH, max_blend: float = 0.3, max_warp: float = MAX_WARP,
            threshold: float = 2.0,
            position_stride: int = POSITION_STRIDE, warm_start: bool = True, gen_patience: int | None = 5,
            keep: str = "best", keep_rate: float = KEEP_RATE, seed: int = 0, progress: bool | None = None) -> Recovery:
    """Stage 1 of BAERASE: search the target (unless given), then train the final generator(s) for it.

    One generator per kind in ``kinds`` is trained for at most ``gen_steps`` at ``betas[0]`` (all kinds batched,
    each seeded ``seed + 100``; a patch at the size the search decided on, or at ``patch_sizes[0]`` when the target
    is given or the search decided on a blend or a warp; stopped early with ``gen_patience``, see
    :func:`~unlearnlib.recovery.mesa.train_generators`); the kind whose triggers reach the higher attack rate on
    ``heldout`` wins *[ours]* (a defender does not know whether the trigger is a patch, a blend or a warp).
    *[ours]* With ``warm_start`` the generator of the kind and size the search decided on starts from the search's
    generator of the target. With several ``betas`` the winner becomes a MESA ensemble, one member per β (the extra
    members batched, seeded ``seed + 101 + i``).
    ``keep="all"`` *[ours]* keeps every kind whose rate reaches ``keep_rate`` besides the winner (an ensemble: each
    image of a batch gets one member): a faint full-image blend is the stronger trigger on most networks, so it
    can win the comparison on a *patch* backdoor and a defense built on it alone leaves the patch in place
    (:class:`~unlearnlib.defenses.agme.Agme` keeps both; docs/decisions/0006-agme-blind-edit-defaults.md).

    Within :func:`~unlearnlib.core.memo.sharing` an identical call (same model weights, data and arguments)
    returns the recovery computed before instead of training again.
    """
    check_keep(keep)
    check_fraction(keep_rate, "keep_rate", low_open=False)
    if gen_patience is not None:
        check_positive_int(gen_patience, "gen_patience")
    args = dict(kinds=tuple(kinds), patch_sizes=check_patch_sizes(patch_sizes), hidden=hidden, betas=tuple(betas),
                gen_alpha=gen_alpha, gen_lr=gen_lr, gen_steps=gen_steps, gen_batch_size=gen_batch_size,
                search_steps=search_steps, search_lr=search_lr, search_batch_size=search_batch_size,
                max_blend=max_blend, max_warp=max_warp, threshold=threshold,
                position_stride=position_stride, warm_start=bool(warm_start), gen_patience=gen_patience, keep=keep,
                keep_rate=keep_rate, seed=seed, target=target, num_classes=num_classes)
    return shared_or_compute((model, train, heldout, args),
                             lambda: _recover(model, train, heldout, num_classes, target, progress=progress, **{
                                 k: v for k, v in args.items() if k not in ("target", "num_classes")}))


def _recover(model: nn.Module, train: Data, heldout: Data, num_classes: int, target: int | None, *,
             kinds: tuple[str, ...], patch_sizes: tuple[int, ...], hidden: int, betas: tuple[float, ...],
             gen_alpha: float, gen_lr: float, gen_steps: int, gen_batch_size: int, search_steps: int,
             search_lr: float, search_batch_size: int, max_blend: float, max_warp: float, threshold: float,
             position_stride: int,
             warm_start: bool, gen_patience: int | None, keep: str, keep_rate: float, seed: int,
             progress: bool | None) -> Recovery:
    start = time.perf_counter()
    common: dict[str, Any] = dict(hidden=hidden, alpha=gen_alpha, max_blend=max_blend, max_warp=max_warp,
                                  position_stride=position_stride)
    search = None
    if target is None:
        search = search_target(model, train, heldout, num_classes, kinds=kinds, steps=search_steps, lr=search_lr,
                               batch_size=search_batch_size, patch_sizes=patch_sizes,
                               threshold=threshold, seed=seed,
                               beta=betas[0], progress=progress, **common)
        target = search.target
    common.update(lr=gen_lr, positions="adaptive", progress=progress_enabled(progress))
    # the patch size the search decided on; the first one when it decided on a blend or the target was given
    size = search.patch_size if search is not None and search.patch_size is not None else patch_sizes[0]
    jobs = [kind_job(kind, size, target, seed + 100, betas[0]) for kind in kinds]
    init = [search.generator if warm_start and search is not None and search.generator is not None
            and search.kind == kind and search.patch_size == job.patch_size else None for kind, job in zip(kinds, jobs)]
    trained = train_generators(model, train.x, jobs, steps=gen_steps, batch_size=gen_batch_size, init=init,
                               patience=gen_patience, desc="final generators", **common)
    finals = [t for t, _ in trained]
    final_steps = max(len(h["hinge"]) for _, h in trained)
    rates = dict(zip(kinds, proxy_rates(model, finals, heldout, [target] * len(kinds))))
    kind = max(rates, key=lambda k: rates[k])
    kept = [kind] if keep == "best" else [k for k in kinds if k == kind or rates[k] >= keep_rate]
    members = [finals[list(kinds).index(k)] for k in kept]
    if len(betas) > 1:
        more = [kind_job(k, size, target, seed + 101 + i, b) for k in kept for i, b in enumerate(betas[1:])]
        members += [t for t, _ in train_generators(model, train.x, more, steps=gen_steps, batch_size=gen_batch_size,
                                                   patience=gen_patience, desc="ensemble generators", **common)]
    trigger: GeneratedTrigger | TriggerEnsemble = members[0] if len(members) == 1 else TriggerEnsemble(members)
    label = "+".join(kept)
    also = [t for k, t in zip(kinds, finals) if k not in kept and rates[k] >= keep_rate]
    return Recovery(trigger, target, label, rates, search, time.perf_counter() - start,
                    patch_size=size if "patch" in kept else None, also_fires=also, final_steps=final_steps)
