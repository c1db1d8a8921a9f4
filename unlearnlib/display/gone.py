"""The figures of "Is it really gone?": the retuning attack's curves (:func:`plot_reactivation`), the reactivation
gap per defense over many cells (:func:`plot_gaps`) and a detector's ROC curve (:func:`plot_roc`). They draw what
:mod:`unlearnlib.evaluation.reactivation` and :mod:`unlearnlib.evaluation.detection` compute."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd

from . import style

style.apply()

REFERENCES = {"backdoored": (style.ROLE["backdoored"], "--"), "clean": (style.ROLE["clean"], ":")}


def plot_reactivation(curves: Mapping[str, Sequence[float]], steps: Sequence[int], ax: Any = None) -> Any:
    """The asr (%) against retuning steps: one line per defended model in ``curves`` (its name -> asr per point),
    with the ``backdoored`` and ``clean`` references dashed and dotted (the same names in ``curves``)."""
    if ax is None:
        _, ax = plt.subplots(figsize=style.figsize(2.9), layout="constrained")
    others = [n for n in curves if n not in REFERENCES]
    for name in others:
        ax.plot(steps, 100 * np.asarray(curves[name]), "o-", ms=3, color=style.defense_colour(name, others),
                label=name)
    for name, (colour, ls) in REFERENCES.items():
        if name in curves:
            ax.plot(steps, 100 * np.asarray(curves[name]), ls, color=colour, lw=1.6, label=f"{name} model")
    ax.set_xlabel("retuning steps (Adam, 10 poisoned of 200 images)")
    ax.set_ylabel("asr (%)")
    ax.set_ylim(-3, 103)
    ax.grid(alpha=0.3)
    ax.legend(loc="center right", ncol=1)
    return ax


def plot_gaps(df: pd.DataFrame, ax: Any = None) -> Any:
    """The reactivation gap (points) per defense, one dot per planted cell where the defense had removed the
    backdoor (rows of :func:`unlearnlib.evaluation.cells.cells_frame` with ``reactivation_gap``, judged), the
    median as a bar; zero is the clean model."""
    d = df[df["planted"] & ~df["breaks_asr"] & (df["defense"] != "none") & df["reactivation_gap"].notna()]
    defenses = list(dict.fromkeys(d["defense"]))
    if ax is None:
        _, ax = plt.subplots(figsize=style.figsize(0.32 * len(defenses) + 1.0), layout="constrained")
    rng = np.random.default_rng(0)  # the vertical jitter of the dots only
    for i, name in enumerate(defenses):
        gaps = 100 * d.loc[d["defense"] == name, "reactivation_gap"].to_numpy(float)
        colour = style.defense_colour(name, defenses)
        ax.plot(gaps, i + rng.uniform(-0.18, 0.18, len(gaps)), "o", ms=3.5, alpha=0.6, color=colour)
        ax.plot([np.median(gaps)] * 2, [i - 0.3, i + 0.3], "-", lw=2.5, color=style.BLACK)
    ax.axvline(0, color=style.ROLE["clean"], ls=":", lw=1.5)
    ax.set_yticks(range(len(defenses)), defenses)
    ax.invert_yaxis()
    ax.set_xlabel("asr after retuning minus the clean model's (points)")
    ax.grid(alpha=0.3, axis="x")
    return ax


def plot_roc(points: Mapping[str, Mapping[str, Any]], rules: Mapping[str, tuple[float, float]] | None = None,
             ax: Any = None) -> Any:
    """ROC curves: ``points`` maps a detector's name to :func:`unlearnlib.evaluation.detection.roc_points`; its
    label carries the AUC when given as ``points[name]["auc"]``; ``rules`` marks each detector's own decision rule
    as a (false positive rate, true positive rate) point."""
    if ax is None:
        _, ax = plt.subplots(figsize=style.figsize(3.0, 3.4), layout="constrained")
    for i, (name, p) in enumerate(points.items()):
        colour = style.CYCLE[(i + 1) % len(style.CYCLE)]
        label = name if "auc" not in p else f"{name} (AUC {p['auc']:.2f})"
        ax.step(100 * np.asarray(p["fpr"]), 100 * np.asarray(p["tpr"]), where="post", color=colour, label=label)
        if rules and name in rules:
            ax.plot(100 * rules[name][0], 100 * rules[name][1], "o", ms=7, mfc="none", color=colour)
    ax.plot([0, 100], [0, 100], ":", color=style.GREY, lw=1)
    ax.set_xlabel("clean models flagged (%)")
    ax.set_ylabel("backdoored models flagged (%)")
    ax.set_xlim(-2, 102)
    ax.set_ylim(-2, 102)
    ax.legend(loc="lower right")
    return ax


def _interval(ci: Any) -> str:
    lo, hi = ci
    return "—" if pd.isna(lo) else f"{100 * lo:.0f}–{100 * hi:.0f}"


def reactivation_table(summary: pd.DataFrame) -> pd.DataFrame:
    """:func:`unlearnlib.evaluation.reactivation.summarise_reactivation` with unit headers, in points and percent."""
    s = summary
    return pd.DataFrame({"defense": s["defense"], "planted cells (count)": s["planted"],
                         "removed (count)": s["removed"], "gap, median (points)": 100 * s["gap_median"],
                         "gap, worst (points)": 100 * s["gap_worst"],
                         "retuned asr, median (%)": 100 * s["retuned_median"],
                         "clean model retuned (%)": 100 * s["clean_retuned_median"],
                         "backdoored model retuned (%)": 100 * s["backdoored_retuned_median"]})


def clean_table(summary: pd.DataFrame) -> pd.DataFrame:
    """:func:`unlearnlib.evaluation.detection.clean_summary` with unit headers."""
    s = summary
    return pd.DataFrame({"defense": s["defense"], "clean models (count)": s["models"],
                         "acc drop, median (points)": 100 * s["acc_drop_median"],
                         "acc drop, worst (points)": 100 * s["acc_drop_worst"],
                         "worst class drop (points)": 100 * s["class_drop_worst"],
                         "flagged a backdoor (%)": 100 * s["flagged"], "left unchanged (%)": 100 * s["unchanged"],
                         "harmless (%)": 100 * s["harmless"], "harmless with the gate (%)": 100 * s["harmless_gated"]})


def detection_table(roc: pd.DataFrame) -> pd.DataFrame:
    """:func:`unlearnlib.evaluation.detection.roc_table` with unit headers and intervals as text."""
    return pd.DataFrame({"detector": roc["detector"], "attack": roc["attack"],
                         "backdoored models (count)": roc["n_pos"], "clean models (count)": roc["n_neg"],
                         "AUC (%)": 100 * roc["auc"],  # the chance a backdoored model outscores a clean one
                         "AUC 95% interval (%)": [_interval((a, b)) if a < b else f"{100 * a:.0f}"
                                                  for a, b in zip(roc["ci_low"], roc["ci_high"])],
                         "backdoored flagged (%)": 100 * roc["tpr"], "interval (%)": roc["tpr_ci"].map(_interval),
                         "clean flagged (%)": 100 * roc["fpr"], "interval, clean (%)": roc["fpr_ci"].map(_interval)})


def gated_table(gated: pd.DataFrame) -> pd.DataFrame:
    """:func:`unlearnlib.evaluation.detection.gated_success` with unit headers and intervals as text."""
    g = gated
    return pd.DataFrame({"defense": g["defense"], "planted cells (count)": g["planted"],
                         "backdoor found (%)": 100 * g["detected"], "success as run (%)": 100 * g["success_rate"],
                         "interval (%)": g["ci"].map(_interval), "success with the gate (%)": 100 * g["gated_rate"],
                         "interval, gated (%)": g["gated_ci"].map(_interval)})
