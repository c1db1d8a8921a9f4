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

from .attacks import Attack, Trigger, make_trigger
from .checks import check_class, check_fraction, check_positive_int
from .data import Data, Split, load_dataset
from .device import resolve_device, seed_everything
from .metrics import der, evaluate
from .models import build_model
from .profiles import Profile, get_profile
from .train import train
from .zoo import cached_model


def trained_model(split: Split, profile: Profile, seed: int, attack: Attack | None = None,
                  attack_config: dict[str, Any] | None = None, device: str | torch.device = "auto",
                  progress: bool | None = None) -> nn.Module:
    """A model trained on ``split.train`` (poisoned by ``attack`` if given), through the zoo cache."""
    dev = resolve_device(device)
    config = {"kind": "trained-model", "dataset": split.name, "split_seed": seed, "seed": seed,
              "model": profile.model, "train": profile.train_kwargs(), "attack": attack_config}
    c, h, _ = split.image_shape

    def build() -> nn.Module:
        seed_everything(seed)
        return build_model(profile.model, c, split.num_classes, h)

    def fit(model: nn.Module) -> nn.Module:
        data = split.train if attack is None else attack.poison(split.train, seed)[0]
        desc = "clean model" if attack is None else f"{attack_config['name']} model"
        return train(model, data, device=dev, seed=seed, progress=progress, desc=desc, **profile.train_kwargs())

    model, _ = cached_model(config, build, fit)
    return model.to(dev).eval()


@dataclass
class Scenario:
    """Everything a defense is evaluated on: the split, the attack and both trained models."""

    profile: Profile
    split: Split
    attack: str
    trigger: Trigger
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
        pool = len(self.split.defender)
        if isinstance(n, bool) or not isinstance(n, int) or not 1 <= n <= pool:
            raise ValueError(f"unseen must be an integer in [1, {pool}] (the defender pool size), got {n!r}")
        return self.split.defender.take(n, self.seed)


def make_scenario(profile: str | Profile = "quick", attack: str = "badnets", seed: int = 0, *,
                  dataset: str | None = None, model: str | None = None, target: int | None = None,
                  poison_ratio: float | None = None, attack_params: dict[str, Any] | None = None,
                  device: str | torch.device = "auto", progress: bool | None = None) -> Scenario:
    """Load the data, build the trigger, and train (or load from the zoo) the clean and backdoored models."""
    prof = get_profile(profile)
    overrides = {k: v for k, v in {"dataset": dataset, "model": model}.items() if v is not None}
    if overrides:
        prof = Profile(**{**prof.to_dict(), **overrides})
    check_positive_int(seed, "seed", minimum=0)
    split = load_dataset(prof.dataset, seed=seed, download=prof.download)
    tgt = prof.target if target is None else target
    check_class(tgt, split.num_classes, "target")
    ratio = check_fraction(prof.poison_ratio if poison_ratio is None else poison_ratio, "poison_ratio")
    params = {**prof.attack_params.get(attack, {}), **(attack_params or {})}
    trigger = make_trigger(attack, split.image_shape, **params)
    attack_config = {"name": attack, "params": params, "target": tgt, "poison_ratio": ratio}
    clean = trained_model(split, prof, seed, None, None, device, progress)
    backdoored = trained_model(split, prof, seed, Attack(trigger, tgt, ratio), attack_config, device, progress)
    return Scenario(prof, split, attack, trigger, tgt, ratio, seed, clean, backdoored, params)


@dataclass
class Run:
    """One defense run: the JSON ``record`` (the CLI's schema) and the defended ``model``."""

    record: dict[str, Any]
    model: nn.Module


def run_defense(scenario: Scenario, defense: str = "none", unseen: int | None = None, *,
                target: int | None = None, device: str | torch.device = "auto", progress: bool | None = None,
                **params: Any) -> Run:
    """Apply a registered defense to the scenario's backdoored model.

    Backdoor-knowledge defenses get the attack's trigger; the others get only ``unseen`` defender samples, and
    ``target`` if the caller knows it (else they search for it). ``defense_seconds`` times the defense alone.
    Hyperparameters: the profile's ``defense_params[defense]``, overridden by ``params``.
    """
    from .defenses import get_defense

    params = {**scenario.profile.defense_params.get(defense, {}), **params}  # the profile's, under the caller's
    d = get_defense(defense, device=device, seed=scenario.seed, progress=progress, **params)
    if defense == "none":
        n, model, info, seconds = 0, scenario.backdoored, {}, 0.0
    else:
        n = d.default_unseen if unseen is None else unseen
        defender = scenario.defender(n)
        seed_everything(scenario.seed)
        start = time.perf_counter()
        out = d(scenario.backdoored, defender, trigger=scenario.trigger if d.needs_trigger else None,
                target=target, num_classes=scenario.split.num_classes)
        seconds = time.perf_counter() - start
        model, info = out.model, out.info
    after = scenario.metrics(model)
    record = {
        "dataset": scenario.split.name, "attack": scenario.attack, "defense": defense, "seed": scenario.seed,
        "target": scenario.target, "unseen": n, "before": scenario.before, "after": after,
        "defense_seconds": seconds, "der": der(scenario.before, after), "profile": scenario.profile.name,
        "info": info,
    }
    return Run(record, model)
