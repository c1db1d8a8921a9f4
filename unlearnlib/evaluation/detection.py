"""Was there a backdoor at all? A blind defense's own statistics as a detector, and what defenses do to clean models.

A blind defense already computes a statistic that separates backdoored from clean models: the target search's
trigger rate at its most anomalous class (``search_score``: how often a small generated trigger flips held-out
images into that class) and Neural Cleanse's largest anomaly index (``nc_anomaly``). :func:`roc_table` scores the
clean models of a grid run with ``victim="clean"`` against the planted backdoored models of a run on the same
scenarios: the ROC curve, its AUC with a bootstrap 95% interval (the Mann-Whitney statistic, scikit-learn's
``roc_auc_score`` value, resampled by ``scipy.stats.bootstrap``), and the defense's own decision rule
(``detected``) as one operating point with Wilson intervals. :func:`clean_summary` is what each defense does to the
clean models. Both take
:func:`unlearnlib.evaluation.cells.cells_frame` rows.

Example::

    clean = run_robustness(40, "results/clean-grid", grid_seed=7, victim="clean")
    roc_table(backdoored_rows, clean)       # per detector and attack family: auc, ci_low, ci_high, tpr, fpr
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
from scipy.stats import bootstrap, rankdata
from sklearn.metrics import roc_curve

from .rule import PLANTED_ASR, judged, wilson

# detector name -> (the defense whose rows carry it, the cells_frame column it thresholds)
DETECTORS = {"target search": ("agme", "search_score"), "Neural Cleanse": ("nc-unlearn", "nc_anomaly")}
RESAMPLES = 2000  # bootstrap resamples of the AUC interval


def _auc(pos: np.ndarray, neg: np.ndarray, axis: int = -1) -> np.ndarray:
    """Mann-Whitney AUC along ``axis`` (ties count one half): scikit-learn's ``roc_auc_score`` value, vectorised over
    resamples."""
    pos, neg = np.moveaxis(pos, axis, -1), np.moveaxis(neg, axis, -1)
    n, m = pos.shape[-1], neg.shape[-1]
    ranks = rankdata(np.concatenate([pos, neg], axis=-1), axis=-1)  # ties share their mean rank
    return (ranks[..., :n].sum(axis=-1) - n * (n + 1) / 2) / (n * m)


def auc_interval(pos: Any, neg: Any, seed: int = 0) -> tuple[float, float, float]:
    """AUC of scores ``pos`` (backdoored) against ``neg`` (clean) and its 95% percentile-bootstrap interval, both
    groups resampled independently. With complete separation every resample gives 1: the interval is then [1, 1]
    and says only that no resample mixed them (the decision point's Wilson intervals stay informative)."""
    pos, neg = np.asarray(pos, dtype=float), np.asarray(neg, dtype=float)
    if len(pos) < 2 or len(neg) < 2:
        raise ValueError(f"pos and neg need at least 2 scores each, got {len(pos)} and {len(neg)}")
    auc = float(_auc(pos, neg))
    if auc in (0.0, 1.0):
        return auc, auc, auc
    res = bootstrap((pos, neg), _auc, vectorized=True, paired=False, n_resamples=RESAMPLES, method="percentile",
                    random_state=np.random.default_rng(seed))
    return auc, float(res.confidence_interval.low), float(res.confidence_interval.high)


def _scores(df: pd.DataFrame, defense: str, column: str) -> pd.DataFrame:
    sub = df[(df["defense"] == defense) & (df["status"] == "ok")]
    return sub[pd.to_numeric(sub[column], errors="coerce").notna()]


def roc_table(backdoored: pd.DataFrame, clean: pd.DataFrame, seed: int = 0) -> pd.DataFrame:
    """Per detector of :data:`DETECTORS` and attack family (and ``all``): the planted backdoored models (``n_pos``)
    against every clean model (``n_neg``): ``auc`` with ``ci_low``/``ci_high``, and the defense's own rule
    (``detected``) as ``tpr`` and ``fpr`` with Wilson intervals."""
    rows = []
    for name, (defense, column) in DETECTORS.items():
        neg = _scores(clean, defense, column)
        pos_all = _scores(backdoored, defense, column)
        pos_all = pos_all[pd.to_numeric(pos_all["asr_before"]) >= PLANTED_ASR]
        for family in ["all", *sorted(pos_all["attack"].unique())]:
            pos = pos_all if family == "all" else pos_all[pos_all["attack"] == family]
            if len(pos) < 2 or len(neg) < 2:
                continue
            auc, lo, hi = auc_interval(pos[column], neg[column], seed)
            tp, fp = int((pos["detected"] == True).sum()), int((neg["detected"] == True).sum())  # noqa: E712
            rows.append({"detector": name, "attack": family, "n_pos": len(pos), "n_neg": len(neg), "auc": auc,
                         "ci_low": lo, "ci_high": hi, "tpr": tp / len(pos), "tpr_ci": wilson(tp, len(pos)),
                         "fpr": fp / len(neg), "fpr_ci": wilson(fp, len(neg))})
    return pd.DataFrame(rows)


def roc_points(backdoored: pd.DataFrame, clean: pd.DataFrame, detector: str) -> dict[str, np.ndarray]:
    """The ROC curve of one detector over every planted backdoored model against the clean ones: ``fpr``, ``tpr``
    and ``thresholds`` (scikit-learn's ``roc_curve``)."""
    defense, column = DETECTORS[detector]
    pos = _scores(backdoored, defense, column)
    pos = pos[pd.to_numeric(pos["asr_before"]) >= PLANTED_ASR][column].to_numpy(float)
    neg = _scores(clean, defense, column)[column].to_numpy(float)
    fpr, tpr, thr = roc_curve(np.r_[np.ones(len(pos)), np.zeros(len(neg))], np.r_[pos, neg])
    return {"fpr": fpr, "tpr": tpr, "thresholds": thr}


def clean_summary(clean: pd.DataFrame) -> pd.DataFrame:
    """Per defense, run on clean models (``victim="clean"``): ``models``; the median and worst clean-accuracy drop
    and worst single-class drop (points lost, fractions); ``flagged`` (its own rule found a backdoor; NaN for a
    defense that does not decide); ``unchanged`` (a blind defense that found none: ``defend`` leaves the model as
    it was); ``harmless`` (within :data:`~.rule.ACC_DROP_MAX` and the target-class bound after the defense) and
    ``harmless_gated`` (the same where ``defend`` writes the defended model only when it found a backdoor)."""
    d = judged(clean)
    rows = []
    for defense, sub in d[(d["defense"] != "none") & (d["status"] == "ok")].groupby("defense", sort=False):
        decides = sub["detected"].notna().all()
        flagged = float((sub["detected"] == True).mean()) if decides else float("nan")  # noqa: E712
        rows.append({"defense": defense, "models": len(sub), "acc_drop_median": float(sub["acc_drop"].median()),
                     "acc_drop_worst": float(sub["acc_drop"].max()),
                     "class_drop_worst": float(pd.to_numeric(sub["class_drop_worst"]).max()),
                     "flagged": flagged, "unchanged": 1.0 - flagged if decides else 0.0,
                     "harmless": float(sub["success"].mean()),
                     "harmless_gated": float((sub["success"] | (sub["detected"] == False)).mean())})  # noqa: E712
    return pd.DataFrame(rows)


def gated_success(backdoored: pd.DataFrame) -> pd.DataFrame:
    """Per defense that decides (``detected`` not None), over the planted cells: the success rate as run and when a
    cell counts only where the defense also found the backdoor (``defend`` changes nothing otherwise), each with
    its Wilson interval."""
    d = judged(backdoored)
    d = d[d["planted"] & (d["defense"] != "none")]
    rows = []
    for defense, sub in d.groupby("defense", sort=False):
        if sub["detected"].isna().any():
            continue
        n, k = len(sub), int(sub["success"].sum())
        kg = int((sub["success"] & (sub["detected"] == True)).sum())  # noqa: E712
        rows.append({"defense": defense, "planted": n, "detected": float((sub["detected"] == True).mean()),  # noqa: E712
                     "success_rate": k / n, "ci": wilson(k, n), "gated_rate": kg / n, "gated_ci": wilson(kg, n)})
    return pd.DataFrame(rows)
