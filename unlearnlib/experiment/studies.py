"""Small computations the chapters show: how a backdoor's asr follows the trigger's strength at test time, how
the edit with backdoor knowledge depends on the number of unseen samples, and the playground's plant-and-defend
run. The chapters plot them (:mod:`unlearnlib.display`)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import pandas as pd
from torch import nn

from ..attacks import make_trigger
from ..data import Data
from ..defenses import get_defense
from ..ml.metrics import evaluate
from .runs import Run, run_defense
from .scenario import Scenario, make_scenario


def strength_curve(model: nn.Module, test: Data, attack: str, param: str, values: Sequence[float], target: int,
                   base_params: Mapping[str, object] | None = None) -> list[float]:
    """asr of ``model`` when the attack's ``param`` (blended ``alpha``, badnets ``size``) varies at test time."""
    out = []
    for v in values:
        trig = make_trigger(attack, tuple(test.x.shape[1:]), **{**(base_params or {}), param: v})
        out.append(evaluate(model, test, trig, target)["asr"])
    return out


def bdk_edit(sc: Scenario, n: int, **params: Any) -> tuple[nn.Module, dict[str, Any]]:
    """The ``agme-bdk`` defense with ``n`` unseen samples on the scenario; (model, metrics + edit seconds)."""
    out = get_defense("agme-bdk", **params)(sc.backdoored, sc.defender(n), trigger=sc.trigger)
    return out.model, {**sc.metrics(out.model), "seconds": out.info["edit_seconds"], "layers": out.info["layers"]}


def sample_efficiency(sc: Scenario, ns: tuple[int, ...] = (1, 2, 5, 10, 20, 50), **kw: Any) -> pd.DataFrame:
    """acc / asr / target_acc (fractions, as every package frame: :func:`unlearnlib.display.style.table` shows them in
    percent) and edit seconds of the BDK edit for each number of ``unseen`` samples."""
    rows = []
    for n in ns:
        _, m = bdk_edit(sc, n, **kw)
        rows.append({"unseen": n, **{k: m[k] for k in ("acc", "asr", "target_acc")}, "seconds": m["seconds"]})
    return pd.DataFrame(rows)


STRENGTH = {"badnets": "size", "blended": "alpha"}  # each attack's main strength parameter


def play(profile: str = "quick", attack: str = "badnets", strength: float | None = None, poison_ratio: float = 0.1,
         defense: str = "agme-bdk", unseen: int | None = None, seed: int = 0, progress: bool | None = None) -> Run:
    """Plant ``attack`` (its main strength parameter set to ``strength``), run ``defense``; returns the Run.

    This is what the playground's button calls; the chapter calls it directly for its static run.
    """
    params = {} if strength is None else {STRENGTH[attack]: strength}
    sc = make_scenario(profile, attack, seed, poison_ratio=poison_ratio, attack_params=params, progress=progress)
    return run_defense(sc, defense, unseen, progress=progress)
