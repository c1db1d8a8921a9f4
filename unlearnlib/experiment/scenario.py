"""Scenarios: the data, the trigger and the clean and backdoored models of one (profile, dataset, attack, seed),
trained once and cached (:mod:`unlearnlib.core.cache`). The CLI, the grids and the chapters all use this."""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from functools import cached_property
from typing import Any

import torch
from torch import nn

from ..attacks import Attack, make_trigger
from ..core.cache import cached_model
from ..core.checks import check_class, check_fraction, check_positive_int
from ..core.device import resolve_device, seed_everything
from ..data import Data, Split, load_dataset
from ..ml.metrics import evaluate
from ..ml.train import train
from ..ml.triggers import BaseTrigger
from ..models import build_model
from .profiles import Profile, get_profile


def trained_model(split: Split, profile: Profile, seed: int, attack: Attack | None = None,
                  attack_config: dict[str, Any] | None = None, device: str | torch.device = "auto",
                  progress: bool | None = None, clean: nn.Module | None = None) -> nn.Module:
    """A model trained on ``split.train`` (planted with ``attack`` if given: :meth:`Attack.plant`, which fits a
    trigger that needs it to the ``clean`` model), through the model cache; a trigger's learned tensors are cached
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
    if dev.type == "cpu":  # a CPU's parallel sums round by its thread count: another count trains another model
        config["threads"] = torch.get_num_threads()
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


def clean_victim(scenario: Scenario) -> Scenario:
    """The scenario with its clean model in the backdoored model's place: what a defense does to a model that has
    no backdoor (``before`` is then the clean model's metrics; its ``asr`` is the floor)."""
    return replace(scenario, backdoored=scenario.clean)


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
    """Load the data, build the trigger, and train (or load from the cache) the clean and backdoored models.

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
    """The scenario of one robustness-grid cell (a spec of :func:`unlearnlib.evaluation.robustness.sample_cells`: its
    attack, seed, model, target, poison ratio and attack parameters; None: the profile's) under ``profile``; ``kw`` go
    to :func:`make_scenario`."""
    return make_scenario(profile, spec["attack"], spec["seed"], model=spec["model"], target=spec["target"],
                         poison_ratio=spec["poison_ratio"], attack_params=spec["attack_params"] or None, **kw)

