"""Scenarios and runs: the clean and backdoored models of one (profile, dataset, attack, seed), and a defense
applied to the backdoored one with before/after metrics. The CLI, the benchmark and the chapters all use this.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from functools import cached_property
from typing import Any

import torch
from torch import nn

from .attacks import Attack, BaseTrigger, make_trigger
from .checks import check_class, check_fraction, check_positive_int
from .data import Data, Split, load_dataset
from .device import resolve_device, seed_everything
from .metrics import der, evaluate
from .models import build_model
from .profiles import Profile, get_profile
from .recover.shared import RecoveryMemo, sharing
from .registry import DEFENSES
from .train import train
from .zoo import cached_model


def trained_model(split: Split, profile: Profile, seed: int, attack: Attack | None = None,
                  attack_config: dict[str, Any] | None = None, device: str | torch.device = "auto",
                  progress: bool | None = None, clean: nn.Module | None = None) -> nn.Module:
    """A model trained on ``split.train`` (planted with ``attack`` if given: :meth:`Attack.plant`, which fits a
    trigger that needs it to the ``clean`` model), through the zoo cache; a trigger's learned tensors are cached
    with the model and restored into ``attack.trigger`` on a hit. A backdoored model trains with the profile's
    settings for its attack (:meth:`Profile.train_kwargs`: ``attack_train`` overrides, e.g. WaNet's epochs), and
    again with :meth:`Profile.retry_kwargs` where the attacker's own check finds it unplanted."""
    dev = resolve_device(device)
    name = attack_config["name"] if attack is not None and attack_config else None
    train_kw, retry = profile.train_kwargs(name), profile.retry_kwargs(name)
    config = {"kind": "trained-model", "dataset": split.name, "split_seed": seed, "seed": seed,
              "model": profile.model, "train": train_kw, "attack": attack_config}
    if retry is not None:  # only then: every other model keeps its cache key
        config["retry"] = retry
    if split.fingerprint:  # data read from the user's disk: a changed file is a different model
        config["data"] = split.fingerprint
    c, h, _ = split.image_shape

    def build() -> nn.Module:
        seed_everything(seed)
        return build_model(profile.model, c, split.num_classes, h)

    def fit(model: nn.Module) -> nn.Module:
        kw = {"device": dev, "progress": progress, **train_kw}
        if attack is None:
            return train(model, split.train, seed=seed, desc="clean model", **kw)
        return attack.plant(model, split.train, seed=seed, clean=clean, retry=retry, desc=f"{name} model", **kw)

    trig = attack.trigger if attack is not None else None
    model, _ = cached_model(config, build, fit, trig if isinstance(trig, BaseTrigger) else None)
    return model.to(dev).eval()


@dataclass
class Scenario:
    """Everything a defense is evaluated on: the split, the attack and both trained models."""

    profile: Profile
    split: Split
    attack: str
    trigger: BaseTrigger
    target: int
    poison_ratio: float
    seed: int
    clean: nn.Module
    backdoored: nn.Module
    attack_params: dict[str, Any] = field(default_factory=dict)

    @cached_property
    def asr_floor(self) -> float:
        return evaluate(self.clean, self.split.test, self.trigger, self.target)["asr"]

    @cached_property
    def before(self) -> dict[str, float]:
        """Metrics of the backdoored model, with the clean model's asr as ``asr_floor``."""
        return self.metrics(self.backdoored)

    @cached_property
    def clean_metrics(self) -> dict[str, float]:
        return self.metrics(self.clean)

    def metrics(self, model: nn.Module) -> dict[str, float]:
        return {**evaluate(model, self.split.test, self.trigger, self.target), "asr_floor": self.asr_floor}

    def defender(self, n: int) -> Data:
        """The first ``n`` samples of the defender pool (class-balanced, fixed by the seed)."""
        return take_unseen(self.split.defender, n, self.seed)


def take_unseen(pool: Data, n: int, seed: int) -> Data:
    """The first ``n`` samples of a defender ``pool`` (class-balanced, fixed by the seed), ``unseen`` checked."""
    if isinstance(n, bool) or not isinstance(n, int) or not 1 <= n <= len(pool):
        raise ValueError(f"unseen must be an integer in [1, {len(pool)}] (the defender pool size), got {n!r}")
    return pool.take(n, seed)


def make_scenario(profile: str | Profile = "quick", attack: str = "badnets", seed: int = 0, *,
                  dataset: str | None = None, model: str | None = None, target: int | None = None,
                  poison_ratio: float | None = None, attack_params: dict[str, Any] | None = None,
                  device: str | torch.device = "auto", progress: bool | None = None, download: bool | None = None,
                  image_size: int | None = None) -> Scenario:
    """Load the data, build the trigger, and train (or load from the zoo) the clean and backdoored models.

    ``download`` overrides the profile's; ``image_size`` resizes a ``folder:PATH`` dataset's images."""
    prof = get_profile(profile)
    overrides = {k: v for k, v in {"dataset": dataset, "model": model, "download": download}.items() if v is not None}
    if overrides:
        prof = Profile(**{**prof.to_dict(), **overrides})
    check_positive_int(seed, "seed", minimum=0)
    split = load_dataset(prof.dataset, seed=seed, download=prof.download, image_size=image_size)
    tgt = prof.target if target is None else target
    check_class(tgt, split.num_classes, "target")
    ratio = check_fraction(prof.poison_ratio if poison_ratio is None else poison_ratio, "poison_ratio")
    params = {**prof.attack_params.get(attack, {}), **(attack_params or {})}
    trigger = make_trigger(attack, split.image_shape, **params)
    attack_config = {"name": attack, "params": params, "target": tgt, "poison_ratio": ratio}
    clean = trained_model(split, prof, seed, None, None, device, progress)
    backdoored = trained_model(split, prof, seed, Attack(trigger, tgt, ratio), attack_config, device, progress, clean)
    return Scenario(prof, split, attack, trigger, tgt, ratio, seed, clean, backdoored, params)


def spec_scenario(spec: dict[str, Any], profile: str | Profile = "quick", **kw: Any) -> Scenario:
    """The scenario of one robustness-grid cell (a spec of :func:`unlearnlib.robustness.sample_cells`: its attack,
    seed, model, target, poison ratio and attack parameters; None: the profile's) under ``profile``; ``kw`` go to
    :func:`make_scenario`."""
    return make_scenario(profile, spec["attack"], spec["seed"], model=spec["model"], target=spec["target"],
                         poison_ratio=spec["poison_ratio"], attack_params=spec["attack_params"] or None, **kw)


@dataclass
class Run:
    """One defense run: the JSON ``record`` (the CLI's schema) and the defended ``model``."""

    record: dict[str, Any]
    model: nn.Module


@dataclass
class Defended:
    """What :func:`apply_defense` returns: the defended model, the defense's ``info``, the ``unseen`` samples
    used, the defense's own seconds, the trigger and target it recovered (None when it did not search), and for a
    ``<defense>+repair`` the model after unlearning, before the repair (``unlearned``)."""

    model: nn.Module
    info: dict[str, Any]
    unseen: int
    seconds: float
    trigger: Any = None
    target: int | None = None
    unlearned: nn.Module | None = None


def apply_defense(model: nn.Module, defense: str, pool: Data, unseen: int | None = None, *,
                  trigger: Any = None, target: int | None = None, num_classes: int | None = None, seed: int = 0,
                  device: str | torch.device = "auto", progress: bool | None = None,
                  shared: RecoveryMemo | None = None, **params: Any) -> Defended:
    """Apply a registered defense to ``model`` with ``unseen`` samples of the defender ``pool`` (default: the
    defense's own default); the one path of ``run``, ``bench`` and ``defend``.

    Backdoor-knowledge defenses get ``trigger`` (the others never see it); ``target`` is handed over as known
    (else the defenses that need it search for it). ``seconds`` times the defense alone: its wall time plus, when
    it reused a trigger recovery from ``shared`` (a :class:`~unlearnlib.recover.shared.RecoveryMemo`, as the
    benchmark keeps), the seconds that recovery took when it was computed.
    """
    from .defenses import get_defense

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
    return Defended(out.model, out.info, n, seconds, out.trigger, out.target, out.unlearned)


def run_defense(scenario: Scenario, defense: str = "none", unseen: int | None = None, *,
                target: int | None = None, device: str | torch.device = "auto", progress: bool | None = None,
                shared: RecoveryMemo | None = None, **params: Any) -> Run:
    """Apply a registered defense to the scenario's backdoored model (:func:`apply_defense`) and measure it.

    Backdoor-knowledge defenses get the attack's trigger; the others get only ``unseen`` defender samples, and
    ``target`` if the caller knows it (else they search for it). ``defense_seconds`` times the defense alone: its
    wall time plus, when it reused a trigger recovery from ``shared`` (a
    :class:`~unlearnlib.recover.shared.RecoveryMemo`), the seconds that recovery took when it was computed.
    Hyperparameters: the profile's ``defense_params[defense]`` (for ``<defense>+repair``: the inner defense's,
    then its own), overridden by ``params``. A ``+repair`` run also records ``unlearned`` (the metrics after
    unlearning, before the repair) and ``info["target_acc"]`` = before / unlearned / repaired (test set).
    """
    from . import defenses as _registered  # noqa: F401  (registers every defense)

    prof = scenario.profile.defense_params
    inner = getattr(DEFENSES.get(defense), "inner", None) or defense  # a composition: its inner defense
    out = apply_defense(scenario.backdoored, defense, scenario.split.defender, unseen, trigger=scenario.trigger,
                        target=target, num_classes=scenario.split.num_classes, seed=scenario.seed, device=device,
                        progress=progress, shared=shared,
                        **{**prof.get(inner, {}), **prof.get(defense, {}), **params})  # the profile's, then ours
    after = scenario.metrics(out.model)
    stages: dict[str, Any] = {}
    if out.unlearned is not None:
        stages["unlearned"] = scenario.metrics(out.unlearned)
        out.info["target_acc"] = {"before": scenario.before["target_acc"],
                                  "unlearned": stages["unlearned"]["target_acc"], "repaired": after["target_acc"]}
    record = {
        "dataset": scenario.split.name, "attack": scenario.attack, "defense": defense, "seed": scenario.seed,
        "target": scenario.target, "unseen": out.unseen, "before": scenario.before, "after": after,
        "defense_seconds": out.seconds, "der": der(scenario.before, after), "profile": scenario.profile.name,
        "info": out.info, **stages,
    }
    return Run(record, out.model)
