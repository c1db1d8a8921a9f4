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
from .reactivation import Retuning
from .rule import BOUNDS, EPS, RAISE_MIN, breaks, judged, wilson

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
# the sampler seeds of the tuning grids (choices were made on them or they were looked at): never a final grid
TUNING_GRID_SEEDS = (0, 1, 7)

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


def _by_registry(df: pd.DataFrame, column: str = "defense") -> pd.DataFrame:
    """``df`` sorted by the registry's order of ``column``'s defenses (unknown names last), stably."""
    order = {n: i for i, n in enumerate(DEFENSES.names())}
    return df.sort_values(column, key=lambda c: c.map(lambda n: order.get(n, len(order))),
                          kind="stable").reset_index(drop=True)


def summarise(df: pd.DataFrame) -> pd.DataFrame:
    """Per defense (``none`` excluded): ``cells``, ``failed`` (runs that raised), ``planted`` (cells whose backdoor
    was planted), ``successes`` and ``success_rate`` over the planted cells with its Wilson interval (``ci_low``,
    ``ci_high``; NaN without a planted cell), ``harmless_rate`` (the unplanted cells where it kept both accuracy
    bounds), ``right_target`` (the planted cells where it named the attacker's target; NaN for a defense that names
    none) and the median and worst (max) of asr, acc_drop and target_acc_drop over its finished runs."""
    d = judged(df)
    rows = []
    for defense, sub in d[d["defense"] != "none"].groupby("defense", sort=False):
        ok, planted = sub[sub["status"] == "ok"], sub[sub["planted"]]
        k, n = int(planted["success"].sum()), len(planted)
        lo, hi = wilson(k, n)
        unplanted = sub[~sub["planted"]]
        row: dict[str, Any] = {"defense": defense, "cells": len(sub), "failed": int((sub["status"] != "ok").sum()),
                               "planted": n, "successes": k, "success_rate": k / n if n else float("nan"),
                               "ci_low": lo, "ci_high": hi,
                               "harmless_rate": float(unplanted["success"].mean()) if len(unplanted) else float("nan"),
                               "right_target": _right_target(planted)}
        for m in ("asr", "acc_drop", "target_acc_drop"):
            row[f"{m}_median"] = float(ok[m].median()) if len(ok) else float("nan")
            row[f"{m}_worst"] = float(ok[m].max()) if len(ok) else float("nan")
        rows.append(row)
    return _by_registry(pd.DataFrame(rows))


def _right_target(planted: pd.DataFrame) -> float:
    """How many of the ``planted`` rows name the attacker's target (``found_target``); NaN where none names one."""
    if "found_target" not in planted or planted["found_target"].isna().all():
        return float("nan")
    return float((planted["found_target"] == planted["target"]).sum())


def success_by(df: pd.DataFrame, by: str) -> pd.DataFrame:
    """Per defense (``none`` excluded) and value of the column ``by`` (``"model"`` or ``"attack"``): the planted
    cells ``n``, the ``successes``, the ``success_rate`` and its Wilson interval (``ci_low``, ``ci_high``), one row
    each."""
    if by not in df.columns:
        raise ValueError(f"by must be a column of the grid's rows, such as 'model' or 'attack'; got {by!r}")
    d = judged(df)
    d = d[(d["defense"] != "none") & d["planted"]]
    rows = []
    for (defense, value), sub in d.groupby(["defense", by], sort=False):
        k, n = int(sub["success"].sum()), len(sub)
        lo, hi = wilson(k, n)
        rows.append({"defense": defense, by: value, "n": n, "successes": k, "success_rate": k / n,
                     "ci_low": lo, "ci_high": hi})
    out = pd.DataFrame(rows, columns=["defense", by, "n", "successes", "success_rate", "ci_low", "ci_high"])
    return _by_registry(out.sort_values(by, kind="stable"))


def worst_cells(df: pd.DataFrame, k: int = WORST_PER_DEFENSE) -> pd.DataFrame:
    """The ``k`` cells furthest from success (:func:`~.rule.badness`) per defense, failed runs first, successes
    left out."""
    d = judged(df)
    d = d[(d["defense"] != "none") & ~d["success"]]
    order = {n: i for i, n in enumerate(DEFENSES.names())}
    d = d.assign(_o=d["defense"].map(lambda n: order.get(n, len(order))))
    d = d.sort_values(["_o", "badness"], ascending=[True, False], kind="stable").drop(columns="_o")
    return d.groupby("defense", sort=False).head(k).reset_index(drop=True)


def failure_cases(df: pd.DataFrame, defense: str, k: int = 3) -> pd.DataFrame:
    """``k`` planted cells where ``defense`` failed, chosen by the data to show different failures: for each bound of
    :data:`~.rule.BOUNDS` in turn the cell that breaks it furthest (:func:`~.rule.badness`), then the worst of the
    rest; each row with its ``reason`` (the bound, or ``"error"``). Fewer when it failed on fewer cells."""
    d = judged(df)
    d = d[(d["defense"] == defense) & d["planted"] & ~d["success"]].sort_values("badness", ascending=False)
    chosen: list[Any] = []
    reasons: list[str] = []
    for m in BOUNDS:
        hit = d[d[f"breaks_{m}"] & ~d.index.isin(chosen)]
        if len(hit) and len(chosen) < k:
            chosen.append(hit.index[0])
            reasons.append(m)
    for i, row in d[~d.index.isin(chosen)].iterrows():
        if len(chosen) >= k:
            break
        chosen.append(i)
        reasons.append(next((m for m in BOUNDS if row[f"breaks_{m}"] and row["status"] == "ok"), "error"))
    return d.loc[chosen].assign(reason=reasons).reset_index(drop=True)


def repair_stages(df: pd.DataFrame) -> pd.DataFrame:
    """Per ``<defense>+repair`` of ``df`` (its finished runs, which record the model after unlearning): the
    target_acc drop and the asr after unlearning and after the repair (medians), the runs within the target bound
    at each stage (:func:`~.rule.breaks`), and the check that the repair never brings the backdoor back -- the runs
    whose asr it raised by more than :data:`~.rule.RAISE_MIN`, those it pushed over the asr bound (unlearning had
    left them within it), and the largest rise with its cell. Empty (same columns) without a repaired defense."""
    cols = ["defense", "cells", "target_acc_drop_unlearned_median", "target_acc_drop_median",
            "target_ok_unlearned", "target_ok", "asr_unlearned_median", "asr_median", "raised", "pushed_over",
            "largest_rise", "largest_rise_cell"]
    d = judged(df)
    if "target_acc_unlearned" not in d:
        return pd.DataFrame(columns=cols)
    d = d[(d["status"] == "ok") & d["defense"].str.endswith("+repair") & d["target_acc_unlearned"].notna()]
    rows = []
    for defense, sub in d.groupby("defense", sort=False):
        t_un = sub["target_acc_before"] - sub["target_acc_unlearned"]
        nan = pd.Series(np.nan, index=sub.index)
        lost, gained = (sub.get(f"target_{k}_unlearned", nan) for k in ("lost", "gained"))
        un_broken = [breaks(a, f, 0.0, t, lo, ga) for a, f, t, lo, ga in
                     zip(sub["asr_unlearned"], sub.get("asr_floor_before", nan), t_un, lost, gained)]
        rise = sub["asr"] - sub["asr_unlearned"]
        worst = rise.idxmax()
        rows.append({"defense": defense, "cells": len(sub), "target_acc_drop_unlearned_median": float(t_un.median()),
                     "target_acc_drop_median": float(sub["target_acc_drop"].median()),
                     "target_ok_unlearned": sum(not b["target_acc_drop"] for b in un_broken),
                     "target_ok": int((~sub["breaks_target_acc_drop"]).sum()),
                     "asr_unlearned_median": float(sub["asr_unlearned"].median()),
                     "asr_median": float(sub["asr"].median()),
                     "raised": int((rise > RAISE_MIN + EPS).sum()),
                     "pushed_over": sum(not b["asr"] and a for b, a in zip(un_broken, sub["breaks_asr"])),
                     "largest_rise": float(rise[worst]), "largest_rise_cell": str(sub.loc[worst, "cell"])})
    return _by_registry(pd.DataFrame(rows, columns=cols))


def run_robustness(cells: int = DEFAULT_CELLS, out: str | Path = "results/robustness", *, grid_seed: int = 0,
                   profile: str = "quick", defenses: Sequence[str] | None = None, device: str = "auto",
                   progress: bool | None = None, strict: bool = False, quiet: bool = False,
                   params: Mapping[str, Mapping[str, Any]] | None = None,
                   unseen: int | None = None, shared: RecoveryMemo | None = None, victim: str = "backdoored",
                   retuning: Retuning | None = None) -> pd.DataFrame:
    """Run (or resume) the robustness grid through :func:`~.grid.run_grid`; return its rows with
    ``acc_drop``, ``target_acc_drop``, ``success`` and ``badness``. ``quiet``: no report of failed cells on
    stderr; ``params``: constructor arguments per defense, to judge a variant on the grid; ``unseen``: defender
    samples for every defense instead of each one's default; ``shared``: a
    :class:`~unlearnlib.core.memo.RecoveryMemo` to share trigger recoveries with another call; ``victim`` and
    ``retuning``: the clean model as the victim, the retuning attack after each defense (all six:
    :func:`~.grid.run_grid`)."""
    specs = sample_cells(cells, grid_seed)
    df = run_grid(profile, None, defenses, out=out, progress=progress, device=device, strict=strict,
                  scenarios=specs, quiet=quiet, params=params, unseen=unseen, shared=shared, victim=victim,
                  retuning=retuning)
    return judged(df)
