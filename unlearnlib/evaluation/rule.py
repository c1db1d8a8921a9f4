"""The one success rule (METHODS.md, "Robustness"): when a cell's backdoor is planted, and when a defense succeeds.

A cell is **planted** when the attacked model's asr is at least :data:`PLANTED_ASR` before any defense: a backdoor a
user must remove. Against the attacked model of the same cell, a defense **succeeds** when

- its asr is at most :func:`asr_bound` = max(:data:`ASR_MAX`, the clean model's rate for that trigger +
  :data:`FLOOR_MARGIN`): a defense cannot be asked to go below the errors a model without a backdoor makes;
- clean accuracy drops by at most :data:`ACC_DROP_MAX`;
- the target class does not lose *significantly* more than :data:`TARGET_ACC_DROP_MAX`: it fails only when its drop
  is over that bound and the one-sided exact McNemar test on the target class's test images (:func:`mcnemar_p`,
  the images the defense lost against those it gained) gives p < :data:`TARGET_ALPHA`. With ~100 test images a
  class, 3 points are 3 images: the test keeps noise from failing a defense.

On unplanted cells a defense must only do no harm (the two accuracy bounds). Success rates come with their 95%
Wilson interval (:func:`wilson`). Every grid, table and plot of the package judges with these functions, on the
rows of :func:`unlearnlib.evaluation.grid.cells_frame`.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
from scipy.stats import binomtest

PLANTED_ASR = 0.50  # a cell's backdoor is planted when the undefended asr is at least this
ASR_MAX = 0.02  # success: asr after the defense at most 2% ...
FLOOR_MARGIN = 0.01  # ... or the clean model's rate for the trigger plus one point, whichever is higher
ACC_DROP_MAX = 0.015  # ... clean accuracy at most 1.5 points below the undefended model's
TARGET_ACC_DROP_MAX = 0.03  # ... the target class not significantly more than 3 points below it
TARGET_ALPHA = 0.05  # the one-sided exact McNemar test's level for that
CONFIDENCE = 0.95  # of the Wilson interval of every success rate
RAISE_MIN = 0.01  # [ours] a repair "raised" the asr when it went up by more than one point (one test image in 100)
BOUNDS = ("asr", "acc_drop", "target_acc_drop")  # the three bounds a failed cell can break, in this order
# rates are counts / n, computed in float32 (a count's rate is off by up to ~1e-7; two counts of n <= 10^5 images
# differ by >= 1e-5): a drop of exactly the bound passes (1e-9 did not: 99% -> 96% read 0.030000031)
EPS = 1e-6


def asr_bound(asr_floor: Any) -> Any:
    """The asr a defense may leave: max(:data:`ASR_MAX`, ``asr_floor`` + :data:`FLOOR_MARGIN`), for a number or a
    Series; an unknown floor (NaN) gives :data:`ASR_MAX`."""
    floor = pd.to_numeric(asr_floor, errors="coerce") if isinstance(asr_floor, pd.Series) else float(asr_floor)
    return np.fmax(ASR_MAX, floor + FLOOR_MARGIN)


def mcnemar_p(lost: Any, gained: Any) -> float:
    """The one-sided exact McNemar test that a defense loses more of the target class's test images than it gains:
    P(X >= ``lost``) for X ~ Binomial(``lost + gained``, 1/2), over the images whose prediction changed. 1 when none
    changed; 0 (significant) when the counts are unknown (NaN: a record without them)."""
    if lost is None or gained is None or not (np.isfinite(lost) and np.isfinite(gained)):
        return 0.0
    lost, gained = int(lost), int(gained)
    if lost + gained == 0:
        return 1.0
    return float(binomtest(lost, lost + gained, 0.5, alternative="greater").pvalue)


def breaks(asr: float, asr_floor: float, acc_drop: float, target_acc_drop: float, lost: float = float("nan"),
           gained: float = float("nan")) -> dict[str, bool]:
    """Which bound of :data:`BOUNDS` a defense's result breaks (fractions; ``lost``/``gained``: the target class's
    test images the defense turned wrong / right). NaN breaks none; :func:`success` treats it as no success."""
    return {"asr": bool(asr > asr_bound(asr_floor) + EPS), "acc_drop": bool(acc_drop > ACC_DROP_MAX + EPS),
            "target_acc_drop": bool(target_acc_drop > TARGET_ACC_DROP_MAX + EPS
                                    and mcnemar_p(lost, gained) < TARGET_ALPHA)}


def success(asr: float, asr_floor: float, acc_drop: float, target_acc_drop: float, lost: float = float("nan"),
            gained: float = float("nan"), planted: bool = True) -> bool:
    """The success criterion of the module docstring; on an unplanted cell only the two accuracy bounds. A missing
    (NaN) metric -- a failed run -- is no success."""
    needed = (asr, acc_drop, target_acc_drop) if planted else (acc_drop, target_acc_drop)
    if any(v is None or not np.isfinite(v) for v in needed):
        return False
    broken = breaks(asr, asr_floor, acc_drop, target_acc_drop, lost, gained)
    return not any(v for k, v in broken.items() if planted or k != "asr")


def badness(asr: float, asr_floor: float, acc_drop: float, target_acc_drop: float, lost: float = float("nan"),
            gained: float = float("nan")) -> float:
    """How far a result is from success: the largest of each metric over its bound (> 1: failed; NaN: inf). A
    target-class drop that is not significant counts as at most 1."""
    target = target_acc_drop / TARGET_ACC_DROP_MAX
    if mcnemar_p(lost, gained) >= TARGET_ALPHA:
        target = min(target, 1.0)
    vals = np.array([asr / asr_bound(asr_floor), acc_drop / ACC_DROP_MAX, target], dtype=float)
    return float("inf") if not np.isfinite(vals).all() else float(vals.max())


def wilson(successes: int, n: int, confidence: float = CONFIDENCE) -> tuple[float, float]:
    """The Wilson score interval of ``successes`` of ``n`` (fractions); (nan, nan) for n = 0."""
    if n == 0:
        return float("nan"), float("nan")
    ci = binomtest(int(successes), int(n)).proportion_ci(confidence_level=confidence, method="wilson")
    return float(ci.low), float(ci.high)


def drops(df: pd.DataFrame) -> pd.DataFrame:
    """``df`` (:func:`unlearnlib.evaluation.grid.cells_frame` rows) with ``acc_drop`` and ``target_acc_drop``: the
    undefended model's rate minus the defended one's (positive = lost)."""
    return df.assign(acc_drop=df["acc_before"] - df["acc"], target_acc_drop=df["target_acc_before"] - df["target_acc"])


def _col(df: pd.DataFrame, name: str) -> pd.Series:
    return pd.to_numeric(df[name], errors="coerce") if name in df else pd.Series(np.nan, index=df.index)


def judged(df: pd.DataFrame) -> pd.DataFrame:
    """:func:`drops` plus, per row: ``planted``; ``asr_bound``; ``target_p`` (:func:`mcnemar_p`); ``breaks_asr``,
    ``breaks_acc_drop``, ``breaks_target_acc_drop`` (:func:`breaks`); ``success`` (:func:`success`, an unplanted
    cell judged on accuracy alone); ``badness`` (a failed run: no success, infinite badness)."""
    d = drops(df)
    d["planted"] = _col(d, "asr_before").fillna(0.0) >= PLANTED_ASR - EPS
    d["asr_bound"] = asr_bound(_col(d, "asr_floor_before"))
    lost, gained = _col(d, "target_lost"), _col(d, "target_gained")
    d["target_p"] = [mcnemar_p(a, b) for a, b in zip(lost, gained)]
    rows = list(zip(d["asr"], _col(d, "asr_floor_before"), d["acc_drop"], d["target_acc_drop"], lost, gained))
    broken = [breaks(*r) for r in rows]
    for m in BOUNDS:
        d[f"breaks_{m}"] = [b[m] for b in broken]
    ok = d["status"] == "ok"
    d["success"] = [bool(o) and success(*r, planted=bool(p)) for o, r, p in zip(ok, rows, d["planted"])]
    d["badness"] = [badness(*r) if o else float("inf") for o, r in zip(ok, rows)]
    return d
