"""Is it really gone? The retuning attack (Min et al., NeurIPS 2024, "Uncovering, explaining, and mitigating the
superficial safety of backdoor defense", arXiv 2410.09838): fine-tune a defended model for a few steps on a few
poisoned images mixed with clean ones and watch the backdoor come back -- beside the same retuning of the clean
model (what a model that never had the backdoor learns from those images) and of the undefended backdoored one.

The protocol *[ours]*, the paper's retuning attack scaled to mnist5k (:class:`Retuning`): 200 images of the defender
pool, of which 10 images of the other classes carry the attacker's trigger and the target label; Adam at a constant
learning rate 1e-3, batches of 64, 8 epochs (32 steps); the asr on the clean test set before each epoch and after
the last. A defense's **reactivation gap** is its asr after the retuning minus the clean model's. Why this
scale: docs/decisions/0013-is-it-really-gone.md.

Example::

    out = reactivation(scenario, run_defense(scenario, "agme-bdk").model)
    out["gap"], out["curves"]["defended"]        # asr points above the clean model's; asr per step
"""

from __future__ import annotations

import copy
import math
from dataclasses import asdict, dataclass
from typing import Any

import pandas as pd
import torch
from torch import nn

from ..core.checks import check_positive_int, check_positive_number
from ..data import Data
from ..experiment.scenario import Scenario
from ..ml.metrics import attack_rate
from ..ml.train import train
from .rule import judged


@dataclass(frozen=True)
class Retuning:
    """The retuning attack's budget: ``images`` from the defender pool, ``poisoned`` of them triggered and
    relabelled, ``epochs`` of Adam at ``lr`` in batches of ``batch_size``."""

    images: int = 200
    poisoned: int = 10
    epochs: int = 8
    lr: float = 1e-3
    batch_size: int = 64

    def __post_init__(self) -> None:
        for name in ("images", "poisoned", "epochs", "batch_size"):
            check_positive_int(getattr(self, name), name)
        check_positive_number(self.lr, "lr")
        if self.poisoned > self.images:
            raise ValueError(f"poisoned must be at most images ({self.images}), got {self.poisoned}")

    @property
    def steps_per_epoch(self) -> int:
        return math.ceil(self.images / self.batch_size)


def retuning_set(scenario: Scenario, protocol: Retuning = Retuning(), seed: int = 0) -> Data:
    """The retuning images: ``protocol.images`` of the scenario's defender pool (class-balanced, by ``seed``), of
    which ``protocol.poisoned`` images of the other classes carry the trigger and the target label."""
    pool = scenario.split.defender
    if protocol.images > len(pool):
        raise ValueError(f"images must be at most the defender pool's {len(pool)}, got {protocol.images}")
    data = pool.take(protocol.images, seed)
    others = (data.y != scenario.target).nonzero().flatten()
    g = torch.Generator().manual_seed(70_000 + seed)
    idx = others[torch.randperm(len(others), generator=g)[:protocol.poisoned]]
    x, y = data.x.clone(), data.y.clone()
    x[idx] = scenario.trigger.apply(data.x[idx]).to(x.dtype)
    y[idx] = scenario.target
    return Data(x, y)


def triggered_test(scenario: Scenario) -> torch.Tensor:
    """The test images of the other classes with the attacker's trigger: the asr's inputs, stamped once."""
    test = scenario.split.test
    x = test.x[test.y.to(test.x.device) != scenario.target]
    return scenario.trigger.apply(x).to(x.dtype)


def retune(model: nn.Module, scenario: Scenario, data: Data, protocol: Retuning = Retuning(),
           seed: int = 0) -> list[float]:
    """Retune a copy of ``model`` on ``data``; the test-set asr before each epoch and after the last (``epochs + 1``
    values; step ``i * steps_per_epoch``)."""
    x, asr = triggered_test(scenario), []

    def measure(_epoch: int, m: nn.Module) -> None:
        asr.append(attack_rate(m, x, scenario.target))

    tuned = train(copy.deepcopy(model), data, epochs=protocol.epochs, lr=protocol.lr, batch_size=protocol.batch_size,
                  optimizer="adam", schedule="constant", seed=seed, progress=False, desc="retuning",
                  before_epoch=measure)
    measure(protocol.epochs, tuned)
    return asr


def references(scenario: Scenario, protocol: Retuning = Retuning(), seed: int = 0) -> dict[str, list[float]]:
    """The retuning of the scenario's clean and backdoored models (asr per epoch): what every defense is compared
    with; compute once per scenario and pass to :func:`reactivation`."""
    data = retuning_set(scenario, protocol, seed)
    return {name: retune(m, scenario, data, protocol, seed) for name, m in
            (("clean", scenario.clean), ("backdoored", scenario.backdoored))}


def reactivation(scenario: Scenario, defended: nn.Module, protocol: Retuning = Retuning(), seed: int = 0,
                 refs: dict[str, list[float]] | None = None) -> dict[str, Any]:
    """The retuning attack on the ``defended`` model beside the scenario's clean and backdoored models, on the same
    images (:func:`retuning_set`): ``curves`` (asr per epoch), ``steps`` (the step of each point), the final asr of
    each, and ``gap`` = the defended model's final asr minus the clean model's (fractions). ``refs``: the clean and
    backdoored curves from :func:`references` (computed here when None)."""
    refs = references(scenario, protocol, seed) if refs is None else refs
    curves = {"defended": retune(defended, scenario, retuning_set(scenario, protocol, seed), protocol, seed), **refs}
    return {"curves": curves, "steps": [i * protocol.steps_per_epoch for i in range(protocol.epochs + 1)],
            "final": {k: v[-1] for k, v in curves.items()}, "gap": curves["defended"][-1] - curves["clean"][-1],
            "protocol": asdict(protocol)}


def summarise_reactivation(df: pd.DataFrame) -> pd.DataFrame:
    """Per defense, over the planted cells of a grid run with ``retuning`` (:func:`~.cells.cells_frame` rows):
    ``planted``; ``removed`` (cells where the defense brought the asr within its bound, the ones where "is it
    gone?" is a question) and over those the reactivation gap's ``gap_median`` and ``gap_worst``, the retuned
    asr of the defended model and, for comparison, of the clean and the backdoored models (medians; fractions)."""
    d = judged(df)
    d = d[d["planted"] & (d["status"] == "ok") & d["reactivation_gap"].notna() & (d["defense"] != "none")]
    rows = []
    for defense, sub in d.groupby("defense", sort=False):
        removed = sub[~sub["breaks_asr"]]
        rows.append({"defense": defense, "planted": len(sub), "removed": len(removed),
                     "gap_median": float(removed["reactivation_gap"].median()),
                     "gap_worst": float(removed["reactivation_gap"].max()),
                     "retuned_median": float(removed["retuned_defended"].median()),
                     "clean_retuned_median": float(removed["retuned_clean"].median()),
                     "backdoored_retuned_median": float(removed["retuned_backdoored"].median())})
    return pd.DataFrame(rows)
