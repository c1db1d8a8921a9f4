"""The one success rule: when a defense succeeds on a grid cell, and when a cell's backdoor counts as planted.

A defense succeeds on a cell (:func:`success`) when, against the undefended (attacked) model of the same cell, its
asr is at most :data:`ASR_MAX` and it costs at most :data:`ACC_DROP_MAX` of clean accuracy and
:data:`TARGET_ACC_DROP_MAX` of the target class's accuracy. A cell is *planted* when the attacked model's asr is
at least :data:`PLANTED_ASR` before any defense. Every grid, table and plot of the package judges with these
functions, on the rows of :func:`unlearnlib.evaluation.grid.cells_frame`.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from ..attacks.base import PLANTED_ASR  # a cell's backdoor is planted when the undefended asr is at least this

ASR_MAX = 0.02  # success: asr after the defense at most 2%
ACC_DROP_MAX = 0.015  # ... clean accuracy at most 1.5 points below the undefended model's
TARGET_ACC_DROP_MAX = 0.03  # ... target-class accuracy at most 3 points below the undefended model's
RAISE_MIN = 0.01  # [ours] a repair "raised" the asr when it went up by more than one point (one test image in 100)
BOUNDS = {"asr": ASR_MAX, "acc_drop": ACC_DROP_MAX, "target_acc_drop": TARGET_ACC_DROP_MAX}  # success's order
# rates are counts / n, computed in float32 (a count's rate is off by up to ~1e-7; two counts of n <= 10^5 images
# differ by >= 1e-5): a drop of exactly the bound passes (1e-9 did not: 99% -> 96% read 0.030000031)
EPS = 1e-6
def drops(df: pd.DataFrame) -> pd.DataFrame:
    """``df`` (:func:`unlearnlib.evaluation.grid.cells_frame` rows) with ``acc_drop`` and ``target_acc_drop``: the
    undefended model's rate minus the defended one's (positive = lost)."""
    return df.assign(acc_drop=df["acc_before"] - df["acc"], target_acc_drop=df["target_acc_before"] - df["target_acc"])


def over_bound(metric: str, value: Any) -> Any:
    """Whether ``value`` (a fraction, or a Series of them) breaks ``metric``'s success bound (:data:`BOUNDS`);
    NaN breaks none. The one comparison behind :func:`success` and the failure-reason counts."""
    return value > BOUNDS[metric] + EPS


def success(asr: float, acc_drop: float, target_acc_drop: float) -> bool:
    """The success criterion of the grid: asr <= :data:`ASR_MAX`, acc drop <= :data:`ACC_DROP_MAX` and target_acc
    drop <= :data:`TARGET_ACC_DROP_MAX` (fractions). A missing (NaN) metric -- a failed cell -- is no success."""
    vals = (asr, acc_drop, target_acc_drop)
    if any(v is None or not np.isfinite(v) for v in vals):
        return False
    return not any(over_bound(m, v) for m, v in zip(BOUNDS, vals))


def badness(asr: float, acc_drop: float, target_acc_drop: float) -> float:
    """How far a cell is from success: the largest of each metric over its bound (> 1: failed; NaN: inf)."""
    vals = np.array([asr / ASR_MAX, acc_drop / ACC_DROP_MAX, target_acc_drop / TARGET_ACC_DROP_MAX], dtype=float)
    return float("inf") if not np.isfinite(vals).all() else float(vals.max())


def judged(df: pd.DataFrame) -> pd.DataFrame:
    """:func:`drops` plus ``success``, ``badness`` (failed cells: no success, infinite badness) and ``planted``
    (the undefended asr is at least :data:`PLANTED_ASR`) per row."""
    d = drops(df)
    d["planted"] = pd.to_numeric(d["asr_before"], errors="coerce").fillna(0.0) >= PLANTED_ASR - EPS
    ok = d["status"] == "ok"
    d["success"] = [bool(o) and success(a, b, c) for o, a, b, c in
                    zip(ok, d["asr"], d["acc_drop"], d["target_acc_drop"])]
    d["badness"] = [badness(a, b, c) if o else float("inf") for o, a, b, c in
                    zip(ok, d["asr"], d["acc_drop"], d["target_acc_drop"])]
    return d
