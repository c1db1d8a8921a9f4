"""The tables of the "Does it hold?" chapter, read off the robustness grid (:mod:`unlearnlib.evaluation.robustness`).

Every function takes the grid's rows (:func:`unlearnlib.evaluation.grid.cells_frame`, or
:func:`unlearnlib.evaluation.rule.judged` of them) and returns a small DataFrame whose column names carry their units
(:data:`unlearnlib.display.style.UNITS`), ready for :func:`unlearnlib.display.style.table`:

- :func:`draws_table`: what one cell draws, from the sampler's constants;
- :func:`cells_table`: the drawn scenarios;
- :func:`overview`: per defense, the success rate over the planted cells with its 95% interval, and the median and
  worst of each metric;
- :func:`worst_table`: the cells furthest from success, per defense;
- :func:`failure_reasons`: per defense, which bound its failed cells broke;
- :func:`repair_stages`: per ``<defense>+repair``, the target class and the asr after unlearning and after the
  repair, and the cells where the repair raised the asr;
- :func:`against_tuning`: the tuning setting's cell (target 0, seed 0) beside the held-out cells.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd

from ..evaluation import robustness as rb
from ..evaluation import rule


def _spread(values: Sequence[Any]) -> str:
    return ", ".join(str(v) for v in values)


def draws_table() -> pd.DataFrame:
    """What a cell of the grid draws: one row per drawn quantity, its values as text."""
    lo, hi = rb.BLEND_ALPHA
    slo, shi = rb.WANET_S
    rows = [("target class", f"any of the {rb.NUM_CLASSES} classes"),
            ("poison ratio", _spread(f"{100 * p:g}%" for p in rb.POISON_RATIOS)),
            ("architecture", _spread(rb.ARCHS)),
            ("attack", _spread(rb.ATTACKS)),
            ("BadNets trigger", f"size {_spread(rb.BADNETS_SIZES)}; pattern {_spread(rb.BADNETS_PATTERNS)}; "
                                f"position {_spread(rb.BADNETS_POSITIONS)}"),
            ("Blended trigger", f"alpha uniform in [{lo:g}, {hi:g}]; pattern {_spread(rb.BLEND_PATTERNS)}"),
            ("TrojanNN trigger", f"square of size {_spread(rb.TROJANNN_SIZES)}"),
            ("IMC trigger", f"square of size {_spread(rb.IMC_SIZES)}"),
            ("WaNet warp", f"strength s uniform in [{slo:g}, {shi:g}]"),
            ("seed", f"{rb.SEED_BASE} + the cell's index (never {_spread(rb.TUNING_SEEDS)})")]
    return pd.DataFrame(rows, columns=["drawn", "values"])


def cells_table(specs: Sequence[Mapping[str, Any]]) -> pd.DataFrame:
    """The scenarios (:func:`unlearnlib.evaluation.robustness.sample_cells`): cell, model, attack, trigger, target,
    poison (the seed is the cell's: :data:`~unlearnlib.evaluation.robustness.SEED_BASE` + its index)."""
    rows = [{"cell": s["cell"], "model": s["model"], "attack": s["attack"],
             "trigger": ", ".join(f"{k} {v}" for k, v in s["attack_params"].items() if k != "seed") or "—",
             "target": f"class {s['target']}", "poison (%)": 100 * s["poison_ratio"]}
            for s in specs]
    return pd.DataFrame(rows)


def _pct_interval(lo: float, hi: float) -> str:
    return "—" if pd.isna(lo) else f"{100 * lo:.0f}–{100 * hi:.0f}"


def overview(df: pd.DataFrame) -> pd.DataFrame:
    """:func:`unlearnlib.evaluation.robustness.summarise` with unit headers: per defense the planted cells, its
    successes there, the success rate with its 95% interval, the planted cells where it named the right target
    (blind defenses), the share of unplanted cells it left unharmed, errors, and the median and worst asr, acc drop
    and target_acc drop."""
    s = rb.summarise(df)
    out = pd.DataFrame({"defense": s["defense"], "planted cells (count)": s["planted"],
                        "successes (count)": s["successes"], "success (%)": 100 * s["success_rate"],
                        "95% interval": [_pct_interval(lo, hi) for lo, hi in zip(s["ci_low"], s["ci_high"])],
                        "right target (count)": s["right_target"],
                        "unplanted, unharmed (%)": 100 * s["harmless_rate"], "errors (count)": s["failed"]})
    for m, label, unit in (("asr", "asr", "%"), ("acc_drop", "acc drop", "points"),
                           ("target_acc_drop", "target_acc drop", "points")):
        for q in ("median", "worst"):
            out[f"{label}, {q} ({unit})"] = 100 * s[f"{m}_{q}"]
    return out


def worst_table(df: pd.DataFrame, k: int = rb.WORST_PER_DEFENSE) -> pd.DataFrame:
    """:func:`unlearnlib.evaluation.robustness.worst_cells` (``k`` per defense) with unit headers; an error shows its
    first line."""
    w = rb.worst_cells(df, k)
    err = w["error"] if "error" in w else pd.Series([None] * len(w))
    return pd.DataFrame({"defense": w["defense"], "cell": w["cell"], "model": w["model"], "attack": w["attack"],
                         "asr before (%)": 100 * w["asr_before"], "asr (%)": 100 * w["asr"],
                         "acc drop (points)": 100 * w["acc_drop"],
                         "target_acc drop (points)": 100 * w["target_acc_drop"],
                         "error": ["" if pd.isna(e) else _error_line(e) for e in err]})


def _error_line(error: Any, width: int = 60) -> str:
    """The first line of a cell's error, ``Name: message`` shown as ``Name — message`` (a page must not show what
    reads as a raw traceback line)."""
    line = str(error).split("\n")[0]
    return re.sub(r"^(\w+): ", r"\1 — ", line)[:width]


def failure_reasons(df: pd.DataFrame) -> pd.DataFrame:
    """Per defense (``none`` left out), over the planted cells: the cells, the successes, and for the others which
    bound they broke (:func:`unlearnlib.evaluation.rule.breaks`) -- ``error`` (the defense raised), ``asr``,
    ``acc drop``, ``target_acc drop`` (a cell counts under each bound it broke, so the last three may add up to more
    than the failures)."""
    d = rule.judged(df)
    d = d[(d["defense"] != "none") & d["planted"]]
    rows = []
    for defense, sub in d.groupby("defense", sort=False):
        ok = sub[(sub["status"] == "ok") & ~sub["success"]]
        rows.append({"defense": defense, "planted cells (count)": len(sub),
                     "successes (count)": int(sub["success"].sum()),
                     "errors (count)": int((sub["status"] != "ok").sum()),
                     **{f"{m.replace('_drop', ' drop')} over bound (count)": int(ok[f"breaks_{m}"].sum())
                        for m in rule.BOUNDS}})
    order = {n: i for i, n in enumerate(rb.summarise(df)["defense"])}  # the registry's order, as every table
    return pd.DataFrame(rows).sort_values("defense", key=lambda c: c.map(order), kind="stable").reset_index(drop=True)


def repair_stages(df: pd.DataFrame) -> pd.DataFrame:
    """:func:`unlearnlib.evaluation.robustness.repair_stages` with unit headers: per ``<defense>+repair``, the median
    target_acc drop and asr after unlearning and after the repair, the cells within the target bound at each stage,
    the cells whose asr the repair raised (by more than :data:`unlearnlib.evaluation.rule.RAISE_MIN`) or pushed
    over the asr bound, and the largest rise."""
    r = rb.repair_stages(df)
    return pd.DataFrame({"defense": r["defense"], "cells (count)": r["cells"],
                         "target_acc drop, median, unlearned (points)": 100 * r["target_acc_drop_unlearned_median"],
                         "target_acc drop, median, repaired (points)": 100 * r["target_acc_drop_median"],
                         "within target bound, unlearned (count)": r["target_ok_unlearned"],
                         "within target bound, repaired (count)": r["target_ok"],
                         "asr, median, unlearned (%)": 100 * r["asr_unlearned_median"],
                         "asr, median, repaired (%)": 100 * r["asr_median"],
                         "asr raised by the repair (count)": r["raised"],
                         "pushed over asr bound (count)": r["pushed_over"],
                         "largest asr rise (points)": 100 * r["largest_rise"]}).reset_index(drop=True)


def against_tuning(df: pd.DataFrame, tuning: Mapping[str, Mapping[str, Any]]) -> pd.DataFrame:
    """Each defense on the tuning setting (``tuning``: defense -> its record on the book's grid cell, the
    :func:`unlearnlib.evaluation.grid.grid_record` of target 0, seed 0) beside its held-out cells: success there (yes /
    no), the success rate and the worst target_acc drop here (percent, points)."""
    held = rb.summarise(df).set_index("defense")
    rows = []
    for defense, rec in tuning.items():
        if defense not in held.index:
            continue
        b, a = rec["before"], rec["after"]
        flips = rec.get("target_flips", {})
        ok = rule.success(a["asr"], b["asr_floor"], b["acc"] - a["acc"], b["target_acc"] - a["target_acc"],
                          flips.get("lost", float("nan")), flips.get("gained", float("nan")))
        h = held.loc[defense]
        rows.append({"defense": defense, "tuning cell: asr (%)": 100 * a["asr"],
                     "tuning cell: target_acc drop (points)": 100 * (b["target_acc"] - a["target_acc"]),
                     "tuning cell: success": "yes" if ok else "no",
                     "held out: success (%)": 100 * h["success_rate"],
                     "held out: worst target_acc drop (points)": 100 * h["target_acc_drop_worst"]
                     if np.isfinite(h["target_acc_drop_worst"]) else float("nan")})
    return pd.DataFrame(rows)
