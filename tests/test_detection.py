"""Was there a backdoor at all? Defenses on clean models (the grid's ``victim="clean"``), a blind defense's own
statistics as a detector (ROC, AUC with its interval) and ``defend``'s gate (unlearnlib.evaluation.detection)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from sklearn.metrics import roc_auc_score

from unlearnlib.evaluation.cells import cells_frame, detected, detector_scores
from unlearnlib.evaluation.detection import _auc, auc_interval, clean_summary, gated_success, roc_points, roc_table
from unlearnlib.evaluation.grid import run_grid


def test_auc_and_its_interval():
    rng = np.random.default_rng(0)
    pos, neg = rng.normal(1.0, 1.0, 60), rng.normal(0.0, 1.0, 60)
    auc, lo, hi = auc_interval(pos, neg)
    assert lo < auc < hi and 0.65 < auc < 0.9 and hi - lo < 0.25
    assert auc_interval([2, 3], [0, 1]) == (1.0, 1.0, 1.0)  # complete separation: no resample mixes them
    assert auc_interval([0, 1], [2, 3])[0] == 0.0
    with pytest.raises(ValueError, match="at least 2 scores each"):
        auc_interval([1.0], [0.0, 0.5])


def test_vectorised_auc_is_scikit_learns_with_ties():
    rng = np.random.default_rng(1)
    pos, neg = rng.integers(0, 5, (7, 30)).astype(float), rng.integers(1, 6, (7, 20)).astype(float)  # many ties
    want = [roc_auc_score(np.r_[np.ones(30), np.zeros(20)], np.r_[p, n]) for p, n in zip(pos, neg)]
    np.testing.assert_allclose(_auc(pos, neg), want, rtol=0, atol=1e-12)
    np.testing.assert_allclose(_auc(pos.T, neg.T, axis=0), want, rtol=0, atol=1e-12)


def _row(defense, attack, score, det, asr_before=0.99, **kw):
    base = {"defense": defense, "attack": attack, "status": "ok", "search_score": score, "nc_anomaly": score,
            "detected": det, "asr_before": asr_before, "acc_before": 0.97, "acc": 0.97, "target_acc_before": 0.99,
            "target_acc": 0.99, "asr": 0.01, "asr_floor_before": 0.0, "target_lost": 0, "target_gained": 0,
            "class_drop_worst": 0.0}
    return {**base, **kw}


def test_roc_table_scores_planted_backdoored_models_against_clean_ones():
    bd = pd.DataFrame([_row("agme", "badnets", s, s > 0.25) for s in (0.9, 0.8, 0.3, 0.2)]
                      + [_row("agme", "wanet", s, s > 0.25) for s in (0.7, 0.1)]
                      + [_row("agme", "wanet", 0.0, False, asr_before=0.2)])  # unplanted: not a positive
    clean = pd.DataFrame([_row("agme", "badnets", s, s > 0.25, asr_before=0.01) for s in (0.0, 0.1, 0.3, 0.0)])
    t = roc_table(bd, clean)
    t = t[t["detector"] == "target search"].set_index("attack")
    assert list(t.index) == ["all", "badnets", "wanet"] and t.loc["all", "n_pos"] == 6 and t.loc["all", "n_neg"] == 4
    assert t.loc["badnets", "tpr"] == 0.75 and t.loc["all", "fpr"] == 0.25
    lo, hi = t.loc["all", "tpr_ci"]
    assert lo < 5 / 6 < hi
    pts = roc_points(bd, clean, "target search")
    assert pts["fpr"][0] == 0 and pts["tpr"][-1] == 1 and np.all(np.diff(pts["fpr"]) >= 0)


def test_gated_success_counts_a_cell_only_where_the_defense_found_the_backdoor():
    bd = pd.DataFrame([_row("agme", "badnets", 0.9, True), _row("agme", "badnets", 0.1, False),
                       _row("agme-bdk", "badnets", None, None)])
    g = gated_success(bd).set_index("defense")
    assert list(g.index) == ["agme"]  # agme-bdk is told the trigger: it decides nothing
    assert g.loc["agme", "success_rate"] == 1.0 and g.loc["agme", "gated_rate"] == 0.5


def test_detector_scores_and_detected_read_the_records():
    info = {"search_anomaly": [0.0, 7.5, 1.0], "search_scores": [0.0, 0.11, 0.3], "search_outlier": False}
    assert detector_scores(info) == {"search_score": 0.11, "search_anomaly": 7.5, "nc_anomaly": None}
    assert detector_scores({"nc_anomaly_index": [0.5, 2.5]})["nc_anomaly"] == 2.5
    assert detector_scores({"nc_anomaly_index": [0.5]})["nc_anomaly"] is None  # told the target: one class
    assert detected({"detected": True, "info": {}}) is True
    assert detected({"info": info}) is False  # a record from before the field: its search's outlier
    assert detected({"info": {**info, "target_given": True}}) is None


@pytest.fixture(scope="module")
def clean_rows(tmp_path_factory):
    out = tmp_path_factory.mktemp("clean")
    return run_grid("quick", ["badnets"], ["agme-bdk", "nc-unlearn"], seeds=[0], out=out, progress=False,
                    victim="clean", params={"nc-unlearn": {"epochs": 2}}), out


def test_the_clean_victim_runs_every_defense_on_the_clean_model(clean_rows):
    df, out = clean_rows
    assert set(df["victim"]) == {"clean"}
    none = df[df["defense"] == "none"].iloc[0]
    assert none["asr_before"] == pytest.approx(none["asr_floor_before"])  # the "attacked" model is the clean one
    nc = df[df["defense"] == "nc-unlearn"].iloc[0]
    assert nc["detected"] == False and nc["nc_anomaly"] < 2.0  # noqa: E712 -- a clean model: nothing found
    s = clean_summary(df).set_index("defense")
    assert s.loc["nc-unlearn", "unchanged"] == 1.0 and s.loc["nc-unlearn", "harmless_gated"] == 1.0
    assert np.isnan(s.loc["agme-bdk", "flagged"]) and s.loc["agme-bdk", "unchanged"] == 0.0
    assert s.loc["agme-bdk", "class_drop_worst"] >= s.loc["agme-bdk", "acc_drop_worst"] - 1e-9
    again = run_grid("quick", ["badnets"], ["agme-bdk", "nc-unlearn"], seeds=[0], out=out, progress=False,
                     victim="clean", params={"nc-unlearn": {"epochs": 2}})
    pd.testing.assert_frame_equal(again, df)  # resumed from the cells
    with pytest.raises(ValueError, match="^victim must be one of backdoored, clean"):
        run_grid("quick", ["badnets"], ["agme-bdk"], seeds=[0], out=out, victim="poisoned")


def test_cells_frame_keeps_the_old_columns_for_records_without_the_new_fields():
    df = cells_frame([{"attack": "badnets", "defense": "none", "seed": 0, "status": "ok", "before": {}, "after": {}}])
    assert df.loc[0, "victim"] == "backdoored" and pd.isna(df.loc[0, "detected"]) and "reactivation_gap" not in df
