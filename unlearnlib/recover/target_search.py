"""Target identification without being told (MESA's per-class search), and BAERASE's stage 1 (:func:`recover`).

BAERASE's released code is *given* the target; a defender is not.
For every class ``c`` a generator is trained for a short budget to reach ``c`` (the MESA loss), and the class
score is the attack rate its triggers reach on held-out defender images of the *other* classes. A backdoor
target stands out: a small patch or a faint blend cannot turn a clean digit into an arbitrary class, but it can
fire a planted shortcut. Outlyingness is the signed MAD anomaly index (:mod:`unlearnlib.recover.anomaly`)

    a_c = (s_c - median(s)) / (1.4826 · max(MAD(s), δ))                          (anomaly index)

with the floor ``δ`` *[ours]* because clean classes often all score ~0, making the MAD zero. The target is the
class with the largest ``a_c`` (signed: only a *high* score is suspicious); ``outlier`` says whether it exceeds
``threshold`` (2 by convention).
Trigger kinds are searched in order (``"patch"`` then ``"blend"``) and the search stops at the first kind that
yields an outlier *[ours]*.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import nn
from tqdm.auto import tqdm

from ..checks import check_fraction, check_number, check_positive_int, check_positive_number
from ..data import Data
from ..device import progress_enabled
from ..metrics import attack_rate
from .anomaly import anomaly_index
from .mesa import GeneratedTrigger, TriggerEnsemble, train_generator

KINDS = ("patch", "blend")


def proxy_rate(model: nn.Module, trigger: Any, heldout: Data, target: int, draws: int = 1) -> float:
    """Attack rate of ``trigger`` on the held-out images whose label is not ``target`` (``draws`` copies each)."""
    x = heldout.x[heldout.y != target]
    if len(x) == 0:
        return 0.0
    return attack_rate(model, trigger.apply(x.repeat(draws, 1, 1, 1)), target)


def kind_kwargs(kind: str, patch_size: int) -> dict[str, Any]:
    if kind not in KINDS:
        raise ValueError(f"kind must be one of {KINDS}, got {kind!r}")
    return {"patch_size": patch_size if kind == "patch" else None, "positions": "adaptive"}


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

    def info(self) -> dict[str, Any]:
        """JSON-ready summary (floats rounded)."""
        return {"target": self.target, "kind": self.kind, "outlier": self.outlier,
                "scores": [round(s, 4) for s in self.scores], "anomaly": [round(a, 2) for a in self.anomaly],
                "all_scores": {k: [round(s, 4) for s in v] for k, v in self.all_scores.items()}}


def search_target(model: nn.Module, train: Data, heldout: Data, num_classes: int, *,
                  kinds: tuple[str, ...] = KINDS, steps: int = 15, batch_size: int = 32, patch_size: int = 3,
                  threshold: float = 2.0, mad_floor: float = 0.01, min_score: float = 0.25, seed: int = 0,
                  progress: bool | None = None, **generator_kwargs: Any) -> SearchResult:
    """Train one generator per class (``steps`` steps each) and return the outlying class.

    A class is an outlier when its anomaly index exceeds ``threshold`` *and* its triggers fire on at least
    ``min_score`` of the held-out images *[ours]*: with a few dozen held-out images and the MAD floor, one flipped
    image already makes an anomaly index above 2, while a planted backdoor fires on most images. An outlier of a
    later kind beats a non-outlier of an earlier one.

    ``generator_kwargs`` go to :func:`~unlearnlib.recover.mesa.train_generator` (beta, alpha, lr, hidden, ...).
    """
    check_positive_int(steps, "search_steps")
    check_positive_int(num_classes, "num_classes", minimum=2)
    check_number(threshold, "threshold")
    check_fraction(min_score, "min_score", low_open=False)
    check_positive_number(mad_floor, "mad_floor")
    if not kinds or any(k not in KINDS for k in kinds):
        raise ValueError(f"kinds must be a non-empty tuple drawn from {KINDS}, got {kinds!r}")
    start = time.perf_counter()
    best: SearchResult | None = None
    all_scores: dict[str, list[float]] = {}
    for kind in kinds:
        scores = []
        for c in tqdm(range(num_classes), desc=f"target search ({kind})", disable=not progress_enabled(progress),
                      leave=False):
            trig, _ = train_generator(model, train.x, c, steps=steps, batch_size=batch_size, seed=seed + c,
                                      progress=False, **kind_kwargs(kind, patch_size), **generator_kwargs)
            scores.append(proxy_rate(model, trig, heldout, c))
        anomaly = anomaly_index(scores, mad_floor).tolist()
        target = int(torch.tensor(anomaly).argmax())
        all_scores[kind] = scores
        outlier = anomaly[target] > threshold and scores[target] >= min_score
        res = SearchResult(target, kind, scores, anomaly, outlier, 0.0)
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

    def info(self) -> dict[str, Any]:
        out: dict[str, Any] = {"trigger_kind": self.kind, "kind_rates": {k: round(v, 4) for k, v in
                                                                         self.kind_rates.items()}}
        if self.search is not None:
            s = self.search.info()
            out.update(search_scores=s["scores"], search_anomaly=s["anomaly"], search_outlier=s["outlier"],
                       search_kind=s["kind"], search_seconds=round(self.search.seconds, 3))
        return out


def recover(model: nn.Module, train: Data, heldout: Data, num_classes: int, target: int | None = None, *,
            kinds: tuple[str, ...] = KINDS, patch_size: int = 3, hidden: int = 256, betas: tuple[float, ...] = (0.5,),
            gen_alpha: float = 0.1, gen_lr: float = 1e-3, gen_steps: int = 60, gen_batch_size: int = 128,
            search_steps: int = 15, search_batch_size: int = 32, max_blend: float = 0.3, threshold: float = 2.0,
            seed: int = 0, progress: bool | None = None) -> Recovery:
    """Stage 1 of BAERASE: search the target (unless given), then train the final generator(s) for it.

    One generator per kind in ``kinds`` is trained for ``gen_steps`` at ``betas[0]``; the kind whose triggers reach
    the higher attack rate on ``heldout`` wins *[ours]* (a defender does not know whether the trigger is a patch
    or a blend). With several ``betas`` the winner becomes a MESA ensemble, one member per β.
    """
    start = time.perf_counter()
    common = dict(hidden=hidden, alpha=gen_alpha, lr=gen_lr, max_blend=max_blend)
    search = None
    if target is None:
        search = search_target(model, train, heldout, num_classes, kinds=kinds, steps=search_steps,
                               batch_size=search_batch_size, patch_size=patch_size, threshold=threshold, seed=seed,
                               progress=progress, beta=betas[0], **common)
        target = search.target
    finals: dict[str, GeneratedTrigger] = {}
    rates: dict[str, float] = {}
    for kind in kinds:
        finals[kind], _ = train_generator(model, train.x, target, steps=gen_steps, batch_size=gen_batch_size,
                                          beta=betas[0], seed=seed + 100, progress=progress,
                                          **kind_kwargs(kind, patch_size), **common)
        rates[kind] = proxy_rate(model, finals[kind], heldout, target)
    kind = max(rates, key=lambda k: rates[k])
    trigger: GeneratedTrigger | TriggerEnsemble = finals[kind]
    if len(betas) > 1:
        members = [finals[kind]] + [
            train_generator(model, train.x, target, steps=gen_steps, batch_size=gen_batch_size, beta=b,
                            seed=seed + 101 + i, progress=progress, **kind_kwargs(kind, patch_size), **common)[0]
            for i, b in enumerate(betas[1:])]
        trigger = TriggerEnsemble(members)
    return Recovery(trigger, target, kind, rates, search, time.perf_counter() - start)
