"""Defense runs: a registered defense applied to a model (:func:`apply_defense`, the one path of ``run``, the grids
and ``defend``) and to a scenario's backdoored model with before/after metrics (:func:`run_defense`)."""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from ..core.device import seed_everything
from ..core.memo import RecoveryMemo, sharing
from ..core.registry import DEFENSES
from ..data import Data
from ..defenses import get_defense
from ..ml.metrics import der, per_class_accuracy, target_flips
from .scenario import Scenario, take_unseen


@dataclass
class Run:
    """One defense run: the JSON ``record`` (the CLI's schema), the defended ``model``, and the ``trigger`` and
    ``target`` the defense recovered (None when it searched none)."""

    record: dict[str, Any]
    model: nn.Module
    trigger: Any = None
    target: int | None = None


@dataclass
class Defended:
    """What :func:`apply_defense` returns: the defended model, the defense's ``info``, the ``unseen`` samples
    used, the defense's own seconds, the trigger and target it recovered (None when it did not search), and for a
    ``<defense>+repair`` the model after unlearning, before the repair (``unlearned``), and whether its own statistics
    found a backdoor (``detected``; None: it does not decide)."""

    model: nn.Module
    info: dict[str, Any]
    unseen: int
    seconds: float
    trigger: Any = None
    target: int | None = None
    unlearned: nn.Module | None = None
    detected: bool | None = None


def apply_defense(model: nn.Module, defense: str, pool: Data, unseen: int | None = None, *,
                  trigger: Any = None, target: int | None = None, num_classes: int | None = None, seed: int = 0,
                  device: str | torch.device = "auto", progress: bool | None = None,
                  shared: RecoveryMemo | None = None, **params: Any) -> Defended:
    """Apply a registered defense to ``model`` with ``unseen`` samples of the defender ``pool`` (default: the
    defense's own default); the one path of ``run``, ``bench`` and ``defend``.

    Backdoor-knowledge defenses get ``trigger`` (the others never see it); ``target`` is handed over as known
    (else the defenses that need it search for it). ``seconds`` times the defense alone: its wall time plus, when
    it reused a trigger recovery from ``shared`` (a :class:`~unlearnlib.core.memo.RecoveryMemo`, as the
    grid runner keeps), the seconds that recovery took when it was computed.
    """
    d = get_defense(defense, device=device, seed=seed, progress=progress, **params)
    if defense == "none":
        return Defended(model, {}, 0, 0.0)
    n = d.default_unseen if unseen is None else unseen
    defender = take_unseen(pool, n, seed)
    seed_everything(seed)
    credit, start = shared.credited if shared else 0.0, time.perf_counter()
    with sharing(shared):
        out = d(model, defender, trigger=trigger if d.needs_trigger else None, target=target, num_classes=num_classes)
    seconds = time.perf_counter() - start + (shared.credited - credit if shared else 0.0)  # + a reused recovery
    return Defended(out.model, out.info, n, seconds, out.trigger, out.target, out.unlearned, out.detected)


def run_defense(scenario: Scenario, defense: str = "none", unseen: int | None = None, *,
                target: int | None = None, device: str | torch.device = "auto", progress: bool | None = None,
                shared: RecoveryMemo | None = None, **params: Any) -> Run:
    """Apply a registered defense to the scenario's backdoored model (:func:`apply_defense`) and measure it.

    Backdoor-knowledge defenses get the attack's trigger; the others get only ``unseen`` defender samples, and
    ``target`` if the caller knows it (else they search for it). ``defense_seconds`` times the defense alone: its
    wall time plus, when it reused a trigger recovery from ``shared`` (a
    :class:`~unlearnlib.core.memo.RecoveryMemo`), the seconds that recovery took when it was computed.
    Hyperparameters: the profile's ``defense_params[defense]`` (for ``<defense>+repair``: the inner defense's,
    then its own), overridden by ``params``. The record holds ``target_flips`` (the target class's test images the
    defense turned wrong and right: :func:`~unlearnlib.ml.metrics.target_flips`), ``class_acc`` (each class's
    accuracy before and after) and ``detected``. A ``+repair`` run also records ``unlearned`` (the metrics after
    unlearning, before the repair), its ``target_flips_unlearned``, and ``info["target_acc"]`` = before / unlearned /
    repaired (test set).
    """
    prof = scenario.profile.defense_params
    inner = getattr(DEFENSES.get(defense), "inner", None) or defense  # a composition: its inner defense
    out = apply_defense(scenario.backdoored, defense, scenario.split.defender, unseen, trigger=scenario.trigger,
                        target=target, num_classes=scenario.split.num_classes, seed=scenario.seed, device=device,
                        progress=progress, shared=shared,
                        **{**prof.get(inner, {}), **prof.get(defense, {}), **params})  # the profile's, then ours
    after = scenario.metrics(out.model)
    test, tgt = scenario.split.test, scenario.target
    stages: dict[str, Any] = {"target_flips": target_flips(scenario.backdoored, out.model, test, tgt),
                              "class_acc": {"before": per_class_accuracy(scenario.backdoored, test).tolist(),
                                            "after": per_class_accuracy(out.model, test).tolist()}}
    if out.unlearned is not None:
        stages["unlearned"] = scenario.metrics(out.unlearned)
        stages["target_flips_unlearned"] = target_flips(scenario.backdoored, out.unlearned, test, tgt)
        out.info["target_acc"] = {"before": scenario.before["target_acc"],
                                  "unlearned": stages["unlearned"]["target_acc"], "repaired": after["target_acc"]}
    record = {
        "dataset": scenario.split.name, "attack": scenario.attack, "defense": defense, "seed": scenario.seed,
        "target": scenario.target, "unseen": out.unseen, "before": scenario.before, "after": after,
        "defense_seconds": out.seconds, "der": der(scenario.before, after), "profile": scenario.profile.name,
        "detected": out.detected,
        "info": out.info, **stages,
    }
    return Run(record, out.model, out.trigger, out.target)
