"""BAERASE (Liu et al. 2022): recover the trigger distribution with a max-entropy generator, then unlearn it.

Stage 1, recovery (:mod:`unlearnlib.recovery.mesa`, :mod:`unlearnlib.recovery.target_search`): find the target
``t`` (unless given) and train a generator ``G`` whose samples fire the backdoor. Stage 2, unlearning *[code]*:

    L(θ) = α · CE(f_θ(x), y) − min( CE(f_θ(Π(x, G(z))), t), τ ) + λ · ‖θ − θ0‖₁          (BAERASE loss)

on the defender's clean images, with fresh ``G(z)`` for every image and triggered copies of non-target images only.
What is ours, not the authors' code:

- the ascent is *bounded* per sample at ``τ`` (``ascent_bound=5``: stop pushing an image once its target
  probability is below ``e^-5``); unbounded, it drives triggered images into whatever class is easiest;
- the stop rule is a defender-side proxy: at most ``stop_live`` of the held-out images, stamped with fresh
  generated triggers, still give the target a probability above ``e^-τ``, and the held-out clean outputs are back
  to the original model's (KL below ``kl_stop``). The released code stops on the true trigger's asr, an oracle;
- the classifier stays in eval mode (BatchNorm statistics are not re-estimated on ~100 images);
- the clean term is ``α · KL(f_θ0(x) ‖ f_θ(x))`` (``anchor="kl"``) instead of the paper's ``α · CE(f(x), y)``;
- Adam at lr 1e-3 (``optimizer="adam"``; the paper's SGD lr 1e-4, momentum 0.9 is ``optimizer="sgd"``);
- mnist5k budgets: α = 10 (paper 100), generator width 256 (paper 2048), at most 60 generator steps of Adam at
  lr 1e-3 on 32 images (stopped once the attack term stops gaining),
  the target search's per-class generators 20 steps at lr 3e-3;
- every CPU core by default (``threads=None``).

Why these defaults: docs/decisions/0008-baerase-unlearning.md.
"""

from __future__ import annotations

import copy
import inspect
import math
import time
from collections.abc import Callable
from typing import Any

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
    check_same_device,
)
from ..core.device import autocast, channels_last, cpu_threads, progress_enabled
from ..core.registry import DEFENSES
from ..data import Data
from ..ml.train import DivergenceError, descend
from ..recovery.mesa import GeneratedTrigger, TriggerEnsemble
from ..recovery.target_search import (
    GEN_BATCH,
    KINDS,
    MAX_WARP,
    PATCH_SIZES,
    POSITION_STRIDE,
    SEARCH_BATCH,
    SEARCH_LR,
    SEARCH_STEPS,
    SMOKE_RECOVER,
    Recovery,
    check_keep,
    check_patch_sizes,
    recover,
)
from .base import Defense, DefenseResult

__all__ = ["BAErase", "DivergenceError", "Recovery", "recover", "unlearn"]

OPTIMIZERS = ("adam", "sgd")


@torch.no_grad()
def proxy_stats(model: nn.Module, trigger: GeneratedTrigger | TriggerEnsemble, heldout: Data, target: int,
                tau: float, draws: int = 4) -> tuple[float, float]:
    """``(proxy asr, live fraction)`` from one forward: among held-out non-target images stamped with generated
    triggers (``draws`` each), the fraction classified as ``target`` and the fraction whose target probability
    is still above ``e^-τ`` (whose bounded ascent term is not saturated: the stop proxy *[ours]*)."""
    x = heldout.x[heldout.y != target]
    if len(x) == 0:
        return 0.0, 0.0
    logp = F.log_softmax(model.eval()(trigger.apply(x.repeat(draws, 1, 1, 1))).float(), 1)
    return float((logp.argmax(1) == target).float().mean()), float((logp[:, target] > -tau).float().mean())


def check_unlearn_args(*, alpha: float, lam: float, lr: float, momentum: float, epochs: int, batch_size: int,
                       ascent_bound: float | None, stop_live: float, proxy_draws: int, kl_stop: float,
                       anchor: str, optimizer: str) -> None:
    """The checks of :func:`unlearn`'s arguments, shared with :class:`BAErase` (which fails fast at construction)."""
    if anchor not in ("ce", "kl"):
        raise ValueError(f"anchor must be 'ce' (paper) or 'kl', got {anchor!r}")
    if optimizer not in OPTIMIZERS:
        raise ValueError(f"optimizer must be one of {OPTIMIZERS} ('sgd': the paper's, with momentum), "
                         f"got {optimizer!r}")
    for name, v in (("epochs", epochs), ("batch_size", batch_size), ("proxy_draws", proxy_draws)):
        check_positive_int(v, name)
    for name, v in (("alpha", alpha), ("lam", lam), ("kl_stop", kl_stop)):
        check_number(v, name)
    check_positive_number(lr, "lr")
    check_fraction(momentum, "momentum", low_open=False, high_closed=False)
    if ascent_bound is not None and (isinstance(ascent_bound, bool) or not isinstance(ascent_bound, (int, float))
                                     or not ascent_bound > 0):
        raise ValueError(f"ascent_bound must be None (log K), a number > 0 or math.inf, got {ascent_bound!r}")
    check_fraction(stop_live, "stop_live", low_open=False)


def unlearn(model: nn.Module, train: Data, heldout: Data, trigger: GeneratedTrigger | TriggerEnsemble, target: int, *,
            alpha: float = 10.0, lam: float = 1e-6, lr: float = 1e-3, momentum: float = 0.9, epochs: int = 20,
            batch_size: int = 32, ascent_bound: float | None = 5.0, stop_live: float = 0.01, proxy_draws: int = 4,
            kl_stop: float = 0.02, anchor: str = "kl", optimizer: str = "adam", seed: int = 0,
            progress: bool | None = None,
            callback: Callable[[nn.Module], None] | None = None) -> tuple[nn.Module, dict[str, list[float]]]:
    """Stage 2 of BAERASE: minimise the BAERASE loss in place on ``model``; returns it and per-epoch curves.

    ``ascent_bound`` is τ (``None``: ``log K``; ``math.inf``: the unbounded ascent). ``anchor="ce"`` is the paper's
    clean term ``CE(f(x), y)``; ``"kl"`` *[ours]* is ``KL(f_θ0(x) ‖ f_θ(x))``. ``optimizer`` is ``"adam"`` *[ours]*
    or ``"sgd"`` (the paper's, with ``momentum``; module docstring). The stop proxy (:func:`proxy_stats`,
    the held-out triggered images whose target probability is still above ``e^-τ``; ``1/K`` when τ is infinite) is
    checked after every epoch;
    training stops once it is ``<= stop_live`` *and* the held-out clean outputs are back to the original model's
    (mean ``KL(f_θ0 ‖ f_θ) <= kl_stop`` nats; the anchor keeps working after the ascent saturates), or after
    ``epochs``.
    Curves (index 0 = before, then one value per epoch): ``clean_loss``,
    ``ascent_loss`` (mean unclipped CE to ``t`` on triggered images), ``proxy_asr`` (held-out, fresh draws, argmax),
    ``heldout_acc`` and ``proxy_live``. ``callback(model)`` is called at each record (e.g. to log oracle metrics).
    """
    check_images(train.x, "train.x")
    check_images(heldout.x, "heldout.x")
    check_unlearn_args(alpha=alpha, lam=lam, lr=lr, momentum=momentum, epochs=epochs, batch_size=batch_size,
                       ascent_bound=ascent_bound, stop_live=stop_live, proxy_draws=proxy_draws, kl_stop=kl_stop,
                       anchor=anchor, optimizer=optimizer)
    model.eval()  # [ours] BatchNorm statistics stay those of the original training, from the first forward on
    with torch.no_grad():
        n_cls = int(model(train.x[:1]).shape[1])
    tau = math.log(n_cls) if ascent_bound is None else float(ascent_bound)
    live_tau = tau if math.isfinite(tau) else math.log(n_cls)  # the stop proxy needs a finite level
    dev = train.x.device
    original = copy.deepcopy(model).eval()
    theta0 = [p.detach() for p in original.parameters()]
    params = [p for p in model.parameters() if p.requires_grad]
    opt = (torch.optim.Adam(params, lr=lr) if optimizer == "adam"  # [ours] steps normalised per weight
           else torch.optim.SGD(params, lr=lr, momentum=momentum))
    gen = torch.Generator().manual_seed(seed + 7)
    hist: dict[str, list[float]] = {"clean_loss": [], "ascent_loss": [], "proxy_asr": [], "heldout_acc": [],
                                    "proxy_live": []}

    def record(clean: float, ascent: float) -> float:
        model.eval()
        asr, live = proxy_stats(model, trigger, heldout, target, live_tau, proxy_draws)
        with torch.no_grad():
            acc = float((model(heldout.x).argmax(1) == heldout.y).float().mean())
        for k, v in zip(hist, (clean, ascent, asr, acc, live)):
            hist[k].append(float(v))
        if callback is not None:
            callback(model)
        return live

    with torch.no_grad():
        xt0 = trigger.apply(train.x[train.y != target])
        c0 = float(F.cross_entropy(model(train.x), train.y))
        a0 = float(F.cross_entropy(model(xt0), torch.full((len(xt0),), target, device=dev)))
    live = record(c0, a0)

    with torch.no_grad():
        ref_held = F.log_softmax(original(heldout.x).float(), 1)

    def done(live: float) -> bool:  # [ours] backdoor proxy saturated AND held-out clean outputs back (KL)
        if live > stop_live:
            return False
        with torch.no_grad():
            out = F.log_softmax(model.eval()(heldout.x).float(), 1)
            return float(F.kl_div(out, ref_held, log_target=True, reduction="batchmean")) <= kl_stop

    bar = tqdm(range(epochs), desc="baerase unlearn", disable=not progress_enabled(progress), leave=False)
    with channels_last(model):  # NHWC convolutions for the backward passes (unlearnlib.core.device.channels_last)
        for epoch in bar:
            if done(live):
                break
            model.eval()  # [ours] BatchNorm statistics stay those of the original training
            order = torch.randperm(len(train), generator=gen).to(dev)
            sums, count = [0.0, 0.0], 0
            for s in range(0, len(train), batch_size):
                idx = order[s:s + batch_size]
                x, y = train.x[idx], train.y[idx]
                xn = x[y != target]
                xt = trigger.apply_fresh(xn, gen) if len(xn) else xn
                with autocast(dev):
                    out = model(x)
                    if anchor == "kl":
                        with torch.no_grad():
                            ref = F.log_softmax(original(x).float(), 1)
                        clean = F.kl_div(F.log_softmax(out.float(), 1), ref, log_target=True, reduction="batchmean")
                    else:
                        clean = F.cross_entropy(out, y)
                    ce_t = F.cross_entropy(model(xt), torch.full((len(xt),), target, device=dev), reduction="none")
                ascent = ce_t.clamp(max=tau).mean() if len(xt) else clean.new_zeros(())  # bounded ascent
                l1 = sum((p - p0).abs().sum() for p, p0 in zip(model.parameters(), theta0))
                loss = alpha * clean - ascent + lam * l1
                descend(opt, loss, f"BAERASE unlearning at epoch {epoch}",
                        f"lower lr (now {lr}) or bound the ascent (ascent_bound={ascent_bound})")
                sums[0] += float(clean.detach()) * len(x)
                sums[1] += float(ce_t.detach().mean()) * len(x) if len(xt) else 0.0
                count += len(x)
            live = record(sums[0] / count, sums[1] / count)
            bar.set_postfix(proxy_live=f"{live:.3f}")
    return model.eval(), hist


@DEFENSES.register("baerase")
class BAErase(Defense):
    """Max-entropy trigger recovery + bounded gradient-ascent unlearning; every hyperparameter an argument.

    Paper-code defaults unless marked *[ours]* in the module docstring: ``alpha`` (clean-loss weight; paper 100,
    ours 10), ``lam`` (L1 pull to the original weights, 1e-6), ``optimizer`` (``"adam"`` *[ours]*; the paper's
    ``"sgd"`` with ``momentum`` 0.9), ``epochs`` ≤ 10 (ours: 20),
    ``beta`` 0.5 (a tuple trains a MESA ensemble, e.g. ``(0.9, 0.8, 0.5)``), ``gen_alpha`` (entropy weight, 0.1),
    ``gen_batch_size`` (32 *[ours]*; paper 128); ``patch_sizes`` (3, 6) *[ours]*: the patch sizes the target
    search tries in turn (:mod:`unlearnlib.recovery.target_search`; the paper's code is given the target and a 3x3
    patch). ``kinds``: the trigger kinds to try (``"patch"``, ``"blend"``, ``"warp"``, bounded by ``max_warp``);
    ``holdout`` is the fraction of the defender set kept aside for the stop rule (``stop_live``, ``kl_stop``);
    ``threshold`` (>= 0, default 2) is the anomaly index above which the searched class counts as an outlier;
    ``position_stride`` (2) is the spacing of the adaptive position heatmap's probes (larger: cheaper, coarser).
    ``keep_kinds`` is :func:`~unlearnlib.recovery.target_search.recover`'s ``keep``: ``"best"`` (default) unlearns
    the kind whose triggers reach the target most often; ``"all"`` every kind that reaches it on a quarter of the
    held-out images, as the blind edit does (:class:`~unlearnlib.defenses.agme.Agme`). ``warm_start`` and
    ``gen_patience`` set how the final generators train (:func:`recover`; ``warm_start=False`` *[ours]*: "best"
    compares kinds, and a patch started from the search's generator would win that comparison unfairly).
    ``threads``: CPU threads (None: every core).

    Example::

        result = BAErase()(model, unseen, num_classes=10)  # result.target: the class it found

    Why these defaults: docs/decisions/0008-baerase-unlearning.md.
    """

    name = "baerase"
    repairable = True
    colour = "orange"
    smoke_params = {**SMOKE_RECOVER, "epochs": 3}
    recovers_trigger = True
    default_unseen = 175
    min_classes = 2

    def __init__(self, *, alpha: float = 10.0, lam: float = 1e-6, lr: float = 1e-3, momentum: float = 0.9,
                 epochs: int = 20, batch_size: int = 32, ascent_bound: float | None = 5.0, stop_live: float = 0.01,
                 kl_stop: float = 0.02,
                 holdout: float = 0.2, proxy_draws: int = 4, kinds: tuple[str, ...] = KINDS,
                 patch_sizes: tuple[int, ...] = PATCH_SIZES,
                 hidden: int = 256, beta: float | tuple[float, ...] = 0.5, gen_alpha: float = 0.1,
                 gen_lr: float = 1e-3, gen_steps: int = 60, gen_batch_size: int = GEN_BATCH,
                 search_steps: int = SEARCH_STEPS, search_lr: float = SEARCH_LR, search_batch_size: int = SEARCH_BATCH,
                 max_blend: float = 0.3, max_warp: float = MAX_WARP, threshold: float = 2.0,
                 position_stride: int = POSITION_STRIDE, anchor: str = "kl", optimizer: str = "adam",
                 threads: int | None = None, keep_kinds: str = "best",
                 warm_start: bool = False, gen_patience: int | None = 5,
                 device: str | torch.device = "auto", seed: int = 0, progress: bool | None = None) -> None:
        super().__init__(device=device, seed=seed, progress=progress)
        betas = tuple(beta) if isinstance(beta, (tuple, list)) else (beta,)
        if not betas:
            raise ValueError("beta must be a number in (0, 1) or a non-empty tuple of them")
        for b in betas:
            check_fraction(b, "beta", high_closed=False)
        check_unlearn_args(alpha=alpha, lam=lam, lr=lr, momentum=momentum, epochs=epochs, batch_size=batch_size,
                           ascent_bound=ascent_bound, stop_live=stop_live, proxy_draws=proxy_draws,
                           kl_stop=kl_stop, anchor=anchor, optimizer=optimizer)
        check_number(gen_alpha, "gen_alpha")
        check_positive_number(gen_lr, "gen_lr")
        check_positive_number(search_lr, "search_lr")
        check_number(threshold, "threshold")
        check_fraction(holdout, "holdout", high_closed=False)
        check_fraction(max_blend, "max_blend")
        check_positive_number(max_warp, "max_warp")
        if gen_patience is not None:
            check_positive_int(gen_patience, "gen_patience")
        for name, v in (("hidden", hidden), ("gen_steps", gen_steps),
                        ("gen_batch_size", gen_batch_size), ("search_steps", search_steps),
                        ("search_batch_size", search_batch_size), ("position_stride", position_stride)):
            check_positive_int(v, name)
        if not kinds or any(k not in KINDS for k in kinds):
            raise ValueError(f"kinds must be a non-empty tuple drawn from {KINDS}, got {kinds!r}")
        if threads is not None:
            check_positive_int(threads, "threads")
        self.threads = threads
        self.unlearn_kwargs = dict(anchor=anchor, optimizer=optimizer, alpha=float(alpha), lam=float(lam),
                                   lr=float(lr), momentum=float(momentum), epochs=epochs, batch_size=batch_size,
                                   ascent_bound=ascent_bound, stop_live=float(stop_live), proxy_draws=proxy_draws,
                                   kl_stop=float(kl_stop))
        self.recover_kwargs = dict(kinds=tuple(kinds), patch_sizes=check_patch_sizes(patch_sizes), hidden=hidden,
                                   betas=betas, gen_alpha=float(gen_alpha), gen_lr=float(gen_lr), gen_steps=gen_steps,
                                   gen_batch_size=gen_batch_size, search_steps=search_steps,
                                   search_lr=float(search_lr), search_batch_size=search_batch_size,
                                   max_blend=float(max_blend), max_warp=float(max_warp),
                                   threshold=float(threshold),
                                   position_stride=position_stride, keep=check_keep(keep_kinds, "keep_kinds"),
                                   warm_start=bool(warm_start), gen_patience=gen_patience)
        self.holdout = float(holdout)

    def split(self, defender: Data) -> tuple[Data, Data]:
        """``(train, heldout)``: :meth:`~unlearnlib.data.Data.holdout_split` with ``holdout`` and the seed."""
        return defender.holdout_split(self.holdout, self.seed, "defender")

    def run(self, model: nn.Module, defender: Data, *, trigger: Any, target: int | None,
            num_classes: int) -> DefenseResult:
        check_images(defender.x, "defender.x")
        check_same_device(model, defender.x)
        check_patch_sizes(self.recover_kwargs["patch_sizes"], min(defender.x.shape[-2:]))
        if target is not None:
            check_class(target, num_classes, "target")
        train, heldout = self.split(defender)
        with cpu_threads(self.threads if self.device.type == "cpu" else None):
            return self._run(model, train, heldout, target, num_classes)

    def _run(self, model: nn.Module, train: Data, heldout: Data, target: int | None,
             num_classes: int) -> DefenseResult:
        rec = recover(model, train, heldout, num_classes, target, seed=self.seed,
                      progress=progress_enabled(self.progress), **self.recover_kwargs)
        start = time.perf_counter()
        model, hist = unlearn(model, train, heldout, rec.trigger, rec.target, seed=self.seed,
                              progress=progress_enabled(self.progress), **self.unlearn_kwargs)
        info = {"target": rec.target, "target_given": target is not None, **rec.info(),
                "recovery_seconds": round(rec.seconds, 3), "unlearning_seconds": round(time.perf_counter() - start, 3),
                "epochs_run": len(hist["proxy_asr"]) - 1, **{k: [round(v, 4) for v in vs] for k, vs in hist.items()}}
        detected = None if rec.search is None else bool(rec.search.outlier)
        return DefenseResult(model, info, rec.trigger, int(rec.target), also_fires=rec.also_fires, detected=detected)


# The ablation's headers for the :func:`unlearn` arguments it varies (a unit on each number: unlearnlib.display.style).
SWEEP_HEADERS = {"alpha": "anchor weight α (×)", "ascent_bound": "bound τ (nats)", "epochs": "epochs (count)"}


def sweep(model: nn.Module, train: Data, heldout: Data, trigger: GeneratedTrigger | TriggerEnsemble, target: int,
          settings: list[dict[str, Any]], metrics: Callable[[nn.Module], dict[str, float]], *, seed: int = 0,
          **base: Any) -> tuple[list[dict[str, Any]], dict[str, dict[str, list[float]]]]:
    """Unlearn a copy of ``model`` once per setting (one recovered ``trigger`` for all): the chapter's ablation.

    Each setting may hold ``fraction`` (of ``train`` used, class-balanced) and any :func:`unlearn` argument
    (``alpha``, ``ascent_bound``, ...) over ``base``. Returns one row per setting (every argument any setting
    varies, at its value in this run, under its header with unit in :data:`SWEEP_HEADERS`; the number of
    unlearning images; ``metrics(model)`` in percent) and the curves keyed by a label naming the setting. A
    setting whose loss diverges (:class:`DivergenceError`) gets a row with the error under ``diverged`` and no
    metrics or curve.
    """
    defaults = {k: p.default for k, p in inspect.signature(unlearn).parameters.items()}
    varied = list(dict.fromkeys(k for s in settings for k in s if k != "fraction"))
    rows, curves = [], {}
    for setting in settings:
        s = dict(setting)
        part = train.take(max(1, int(check_fraction(s.pop("fraction", 1.0), "fraction") * len(train))), seed)
        run = {**defaults, **base, **s}
        row = {SWEEP_HEADERS.get(k, k): ("log K" if run.get(k) is None else run.get(k)) for k in varied}
        row["unlearning images (count)"] = len(part)
        try:
            m, h = unlearn(copy.deepcopy(model), part, heldout, trigger, target, seed=seed, **{**base, **s})
        except DivergenceError as exc:  # a setting that diverges is a result of the ablation, shown as such
            rows.append({**row, "diverged": str(exc)})
            continue
        label = ", ".join(f"{k}={'log K' if v is None else v}" for k, v in s.items()) + f", n={len(part)}"
        rows.append({**row, **{f"{k} (%)": round(100 * v, 2) for k, v in metrics(m).items() if k != "asr_floor"}})
        curves[label] = h
    return rows, curves
