"""The held-out robustness grid: does a defense still work on the settings a reader will try?

``python -m unlearnlib bench --grid robustness --cells 60 --out results/robustness`` draws ``cells`` scenarios
from ``numpy.random.default_rng(grid_seed)`` (:func:`sample_cells`) and runs every defense on every one through
the one grid runner (:func:`unlearnlib.evaluation.grid.run_grid` with ``scenarios``): resumable, one progress bar. A
cell draws

- the target class (any class), the poison ratio from :data:`POISON_RATIOS`, the architecture from :data:`ARCHS`;
- the attack, uniformly from :data:`ATTACKS` (every registered attack), and its trigger: BadNets (size 3-5, white /
  checkerboard / random pattern, corner or random position), Blended (alpha uniform in [0.1, 0.3], noise or stripes
  pattern), TrojanNN (a square of size 4-6), IMC (a square of size 3-5) or WaNet (the paper's k = 4 control points,
  warp strength s uniform in [0.5, 1.0]) *[ours]*: the ranges bracket each attack's default in the ``quick``
  profile;
- a seed from the held-out range ``SEED_BASE + i``: the tuning seeds 0-2 never appear.

Cell ``i`` depends on ``grid_seed`` and ``i`` only (draws are sequential), so a longer grid extends a shorter one
and its finished cells are reused. Each cell is judged by the one success rule (:mod:`unlearnlib.evaluation.rule`);
the success rate is also given over the planted cells alone, because on a cell whose backdoor never took the asr
bound says little about the defense. This module returns tables (:func:`summarise`, :func:`success_by`,
:func:`worst_cells`, :func:`repair_stages`) and their markdown (:func:`to_markdown`); the command line writes
them with the plot (:func:`unlearnlib.display.bench.plot_robustness`).
"""
from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from ..core.memo import RecoveryMemo
from ..core.registry import DEFENSES
from .grid import run_grid
from .rule import EPS, RAISE_MIN, drops, judged, over_bound

ARCHS = ("cnn", "lenet5", "mlp", "small-bn")
POISON_RATIOS = (0.01, 0.05, 0.10)
BADNETS_SIZES = (3, 4, 5)
BADNETS_PATTERNS = ("white", "checker", "random")
BADNETS_POSITIONS = ("corner", "random")
BLEND_ALPHA = (0.1, 0.3)  # uniform in this interval
BLEND_PATTERNS = ("noise", "stripes")
ATTACKS = ("badnets", "blended", "trojannn", "imc", "wanet")
TROJANNN_SIZES = (4, 5, 6)
IMC_SIZES = (3, 4, 5)
WANET_S = (0.5, 1.0)  # uniform in this interval
NUM_CLASSES = 10
SEED_BASE = 1000  # held-out seeds: SEED_BASE + cell index; no default was tuned on them
TUNING_SEEDS = (0, 1, 2)

DEFAULT_CELLS = 60  # the grid's size when none is given (the command line's --cells)
WORST_PER_DEFENSE = 3


def sample_cells(cells: int = DEFAULT_CELLS, grid_seed: int = 0) -> list[dict[str, Any]]:
    """``cells`` scenario specs (:func:`~.grid.check_spec`) drawn from ``default_rng(grid_seed)``."""
    if isinstance(cells, bool) or not isinstance(cells, (int, np.integer)) or cells < 1:
        raise ValueError(f"cells must be an integer >= 1 (how many scenarios to draw), got {cells!r}")
    if isinstance(grid_seed, bool) or not isinstance(grid_seed, (int, np.integer)) or grid_seed < 0:
        raise ValueError(f"grid_seed must be an integer >= 0, got {grid_seed!r}")
    rng = np.random.default_rng(int(grid_seed))
    specs = []
    for i in range(int(cells)):
        seed = SEED_BASE + i
        target = int(rng.integers(NUM_CLASSES))
        ratio = float(POISON_RATIOS[rng.integers(len(POISON_RATIOS))])
        model = str(ARCHS[rng.integers(len(ARCHS))])
        attack = str(ATTACKS[rng.integers(len(ATTACKS))])
        params: dict[str, Any]
        if attack == "badnets":
            params = {"size": int(BADNETS_SIZES[rng.integers(len(BADNETS_SIZES))]),
                      "pattern": str(BADNETS_PATTERNS[rng.integers(len(BADNETS_PATTERNS))]),
                      "position": str(BADNETS_POSITIONS[rng.integers(len(BADNETS_POSITIONS))])}
        elif attack == "blended":
            params = {"alpha": round(float(rng.uniform(*BLEND_ALPHA)), 3),
                      "pattern": str(BLEND_PATTERNS[rng.integers(len(BLEND_PATTERNS))])}
        elif attack == "trojannn":
            params = {"size": int(TROJANNN_SIZES[rng.integers(len(TROJANNN_SIZES))])}
        elif attack == "imc":
            params = {"size": int(IMC_SIZES[rng.integers(len(IMC_SIZES))])}
        else:
            params = {"s": round(float(rng.uniform(*WANET_S)), 3)}
        params["seed"] = seed
        specs.append({"cell": f"g{int(grid_seed)}c{i:03d}", "attack": attack, "seed": seed, "model": model,
                      "target": target, "poison_ratio": ratio, "attack_params": params})
    return specs


def summarise(df: pd.DataFrame) -> pd.DataFrame:
    """Per defense (``none`` excluded): ``cells``, ``failed``, ``success_rate``, ``planted`` (cells whose backdoor
    was planted), ``success_rate_planted`` (over those; NaN if none) and the median and worst (max) of asr,
    acc_drop and target_acc_drop over the finished cells."""
    d = judged(df)
    rows = []
    for defense, sub in d[d["defense"] != "none"].groupby("defense", sort=False):
        ok = sub[sub["status"] == "ok"]
        row: dict[str, Any] = {"defense": defense, "cells": len(sub), "failed": int((sub["status"] != "ok").sum()),
                               "success_rate": float(sub["success"].mean()), "planted": int(sub["planted"].sum()),
                               "success_rate_planted": float(sub.loc[sub["planted"], "success"].mean())
                               if sub["planted"].any() else float("nan")}
        for m in ("asr", "acc_drop", "target_acc_drop"):
            row[f"{m}_median"] = float(ok[m].median()) if len(ok) else float("nan")
            row[f"{m}_worst"] = float(ok[m].max()) if len(ok) else float("nan")
        rows.append(row)
    order = {n: i for i, n in enumerate(DEFENSES.names())}
    return pd.DataFrame(rows).sort_values("defense", key=lambda c: c.map(lambda n: order.get(n, len(order))),
                                          kind="stable").reset_index(drop=True)


def success_by(df: pd.DataFrame, by: str) -> pd.DataFrame:
    """Success rate (fraction) per defense (rows, ``none`` excluded) and value of the column ``by`` (``"model"``
    or ``"attack"``; columns, with the number of cells of each)."""
    if by not in df.columns:
        raise ValueError(f"by must be a column of the grid's rows, such as 'model' or 'attack'; got {by!r}")
    d = judged(df)
    d = d[d["defense"] != "none"]
    table = d.pivot_table(index="defense", columns=by, values="success", aggfunc="mean", sort=False)
    n = d.groupby(by, sort=False)["cell"].nunique()
    order = {name: i for i, name in enumerate(DEFENSES.names())}
    table = table.loc[sorted(table.index, key=lambda name: order.get(name, len(order)))]
    return table.rename(columns=lambda c: f"{c} ({n[c]})")


def worst_cells(df: pd.DataFrame, k: int = WORST_PER_DEFENSE) -> pd.DataFrame:
    """The ``k`` cells furthest from success (:func:`badness`) per defense, failed cells first, successes left out."""
    d = judged(df)
    d = d[(d["defense"] != "none") & ~d["success"]]
    order = {n: i for i, n in enumerate(DEFENSES.names())}
    d = d.assign(_o=d["defense"].map(lambda n: order.get(n, len(order))))
    d = d.sort_values(["_o", "badness"], ascending=[True, False], kind="stable").drop(columns="_o")
    return d.groupby("defense", sort=False).head(k).reset_index(drop=True)


def repair_stages(df: pd.DataFrame) -> pd.DataFrame:
    """Per ``<defense>+repair`` of ``df`` (its finished cells, which record the model after unlearning): the
    target_acc drop and the asr after unlearning and after the repair (medians), the cells within the target bound
    at each stage, and the check that the repair never brings the backdoor back -- the cells whose asr it raised by
    more than :data:`RAISE_MIN`, those it pushed over :data:`ASR_MAX` (unlearning had left them within it), and the
    largest rise with its cell. Empty (same columns) when ``df`` holds no repaired defense."""
    cols = ["defense", "cells", "target_acc_drop_unlearned_median", "target_acc_drop_median",
            "target_ok_unlearned", "target_ok", "asr_unlearned_median", "asr_median", "raised", "pushed_over",
            "largest_rise", "largest_rise_cell"]
    d = drops(df)
    if "target_acc_unlearned" not in d:
        return pd.DataFrame(columns=cols)
    d = d[(d["status"] == "ok") & d["defense"].str.endswith("+repair") & d["target_acc_unlearned"].notna()]
    rows = []
    for defense, sub in d.groupby("defense", sort=False):
        t_un = sub["target_acc_before"] - sub["target_acc_unlearned"]
        rise = sub["asr"] - sub["asr_unlearned"]
        worst = rise.idxmax()
        rows.append({"defense": defense, "cells": len(sub), "target_acc_drop_unlearned_median": float(t_un.median()),
                     "target_acc_drop_median": float(sub["target_acc_drop"].median()),
                     "target_ok_unlearned": int((~over_bound("target_acc_drop", t_un)).sum()),
                     "target_ok": int((~over_bound("target_acc_drop", sub["target_acc_drop"])).sum()),
                     "asr_unlearned_median": float(sub["asr_unlearned"].median()),
                     "asr_median": float(sub["asr"].median()),
                     "raised": int((rise > RAISE_MIN + EPS).sum()),
                     "pushed_over": int((~over_bound("asr", sub["asr_unlearned"])
                                         & over_bound("asr", sub["asr"])).sum()),
                     "largest_rise": float(rise[worst]), "largest_rise_cell": str(sub.loc[worst, "cell"])})
    order = {n: i for i, n in enumerate(DEFENSES.names())}
    out = pd.DataFrame(rows, columns=cols)
    return out.sort_values("defense", key=lambda c: c.map(lambda n: order.get(n, len(order))),
                           kind="stable").reset_index(drop=True)


def run_robustness(cells: int = DEFAULT_CELLS, out: str | Path = "results/robustness", *, grid_seed: int = 0,
                   profile: str = "quick", defenses: Sequence[str] | None = None, device: str = "auto",
                   progress: bool | None = None, strict: bool = False, quiet: bool = False,
                   params: Mapping[str, Mapping[str, Any]] | None = None,
                   unseen: int | None = None, shared: RecoveryMemo | None = None) -> pd.DataFrame:
    """Run (or resume) the robustness grid through :func:`~.grid.run_grid`; return its rows with
    ``acc_drop``, ``target_acc_drop``, ``success`` and ``badness``. ``quiet``: no report of failed cells on
    stderr; ``params``: constructor arguments per defense, to judge a variant on the grid; ``unseen``: defender
    samples for every defense instead of each one's default; ``shared``: a
    :class:`~unlearnlib.core.memo.RecoveryMemo` to share trigger recoveries with another call (all four:
    :func:`~.grid.run_grid`)."""
    specs = sample_cells(cells, grid_seed)
    df = run_grid(profile, None, defenses, out=out, progress=progress, device=device, strict=strict,
                  scenarios=specs, quiet=quiet, params=params, unseen=unseen, shared=shared)
    return judged(df)
