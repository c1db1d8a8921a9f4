"""The "Does it hold?" chapter's tables: counts and rates read off hand-made grid rows, units in every header."""

from __future__ import annotations

import math

import pandas as pd
import pytest

import unlearnlib.defenses  # noqa: F401  (registers every defense: tables follow the registry's order)
from unlearnlib.display import tables as rt
from unlearnlib.display.style import check_table, table
from unlearnlib.evaluation import robustness


def _rows(rows):
    cols = {"status": "ok", "acc_before": 0.98, "target_acc_before": 0.97, "asr_before": 1.0, "model": "cnn",
            "attack": "badnets", "error": None}
    return pd.DataFrame([{**cols, **r} for r in rows])


GRID = _rows([
    {"cell": "a", "defense": "agme-bdk", "asr": 0.01, "acc": 0.975, "target_acc": 0.95},  # success
    {"cell": "b", "defense": "agme-bdk", "asr": 0.05, "acc": 0.98, "target_acc": 0.90, "model": "mlp"},  # asr, tacc
    {"cell": "c", "defense": "agme-bdk", "asr": 0.0, "acc": 0.90, "target_acc": 0.97, "attack": "wanet"},  # acc
    {"cell": "a", "defense": "baerase", "asr": None, "acc": None, "target_acc": None, "status": "failed",
     "error": "DivergenceError: the ascent diverged\nmore"},
    {"cell": "b", "defense": "baerase", "asr": 0.0, "acc": 0.98, "target_acc": 0.97, "model": "mlp"},  # success
    {"cell": "c", "defense": "baerase", "asr": 0.0, "acc": 0.98, "target_acc": 0.97, "attack": "wanet",
     "asr_before": 0.3},  # not planted, unharmed
    {"cell": "a", "defense": "none", "asr": 1.0, "acc": 0.98, "target_acc": 0.97},
])


REPAIRED = pd.concat([GRID, _rows([
    {"cell": "a", "defense": "baerase+repair", "asr": 0.03, "acc": 0.98, "target_acc": 0.96, "asr_unlearned": 0.01,
     "target_acc_unlearned": 0.90},  # the repair gave the class back and pushed the asr over its bound
    {"cell": "b", "defense": "baerase+repair", "asr": 0.0, "acc": 0.98, "target_acc": 0.97, "asr_unlearned": 0.0,
     "target_acc_unlearned": 0.97, "model": "mlp"},
])], ignore_index=True)


def _shown(df: pd.DataFrame) -> list[str]:
    """What style.check_table finds wrong in the table as the book shows it."""
    t = table(df)
    return check_table([str(c) for c in t.columns], [[f"{v}" for v in row] for row in t.itertuples(index=False)])


def test_failure_reasons_count_each_broken_bound_and_errors():
    r = rt.failure_reasons(GRID).set_index("defense")
    assert list(r.index) == ["agme-bdk", "baerase"]  # the registry's order; no "none"
    bdk = r.loc["agme-bdk"]
    assert (bdk["planted cells (count)"], bdk["successes (count)"], bdk["errors (count)"]) == (3, 1, 0)
    assert bdk["asr over bound (count)"] == 1 and bdk["acc drop over bound (count)"] == 1
    assert bdk["target_acc drop over bound (count)"] == 1
    ba = r.loc["baerase"]  # cell c is not planted: it is not counted here
    assert (ba["planted cells (count)"], ba["successes (count)"], ba["errors (count)"]) == (2, 1, 1)
    assert ba["asr over bound (count)"] == 0


def test_overview_over_the_planted_cells_with_intervals():
    o = rt.overview(GRID).set_index("defense")
    assert o.loc["agme-bdk", "success (%)"] == pytest.approx(100 / 3) and o.loc["agme-bdk", "successes (count)"] == 1
    assert o.loc["baerase", "success (%)"] == pytest.approx(50.0)  # cell c is not planted
    assert o.loc["baerase", "unplanted, unharmed (%)"] == pytest.approx(100.0)
    assert o.loc["agme-bdk", "95% interval"] == "6–79"  # Wilson, 1 of 3
    assert o.loc["agme-bdk", "target_acc drop, worst (points)"] == pytest.approx(7.0)


def test_worst_and_tuning_tables():
    w = rt.worst_table(GRID)
    assert w["defense"].tolist() == ["agme-bdk", "agme-bdk", "baerase"]  # registry order; successes left out
    assert w["cell"].tolist() == ["c", "b", "a"]  # c: acc drop 8 points = 5.3x its bound; b: asr 2.5x
    assert w.iloc[2]["error"] == "DivergenceError — the ascent diverged" and w.iloc[0]["error"] == ""
    rec = {"before": {"asr": 1.0, "acc": 0.98, "target_acc": 0.97, "asr_floor": 0.0},
           "after": {"asr": 0.0, "acc": 0.975, "target_acc": 0.97}}
    side = rt.against_tuning(GRID, {"agme-bdk": rec, "unknown": rec}).set_index("defense")
    assert list(side.index) == ["agme-bdk"] and side.loc["agme-bdk", "tuning cell: success"] == "yes"
    assert side.loc["agme-bdk", "held out: success (%)"] == pytest.approx(100 / 3)
    assert side.loc["agme-bdk", "held out: worst target_acc drop (points)"] == pytest.approx(7.0)


def test_draws_and_cells_tables_name_the_sampler_values():
    d = rt.draws_table().set_index("drawn")["values"]
    assert all(a in d["attack"] for a in robustness.ATTACKS) and "1%, 5%, 10%" == d["poison ratio"]
    assert str(robustness.SEED_BASE) in d["seed"]
    specs = robustness.sample_cells(3)
    c = rt.cells_table(specs)
    assert c["cell"].tolist() == [s["cell"] for s in specs]
    assert c["target"].tolist() == [f"class {s['target']}" for s in specs]
    assert all("seed" not in t for t in c["trigger"])
    assert math.isclose(c["poison (%)"].iloc[0], 100 * specs[0]["poison_ratio"])


def test_repair_stages_table_in_points_and_counts():
    r = rt.repair_stages(REPAIRED).set_index("defense")
    assert list(r.index) == ["baerase+repair"]  # the defenses without a repair stage are left out
    x = r.loc["baerase+repair"]
    assert x["target_acc drop, median, unlearned (points)"] == pytest.approx(3.5)
    assert x["target_acc drop, median, repaired (points)"] == pytest.approx(0.5)
    assert (x["within target bound, unlearned (count)"], x["within target bound, repaired (count)"]) == (1, 2)
    assert (x["asr raised by the repair (count)"], x["pushed over asr bound (count)"]) == (1, 1)
    assert x["largest asr rise (points)"] == pytest.approx(2.0)
    assert rt.repair_stages(GRID).empty


@pytest.mark.parametrize("make", [rt.failure_reasons, rt.overview, rt.worst_table, lambda df: rt.draws_table(),
                                  lambda df: rt.cells_table(robustness.sample_cells(3)), rt.repair_stages])
def test_every_table_has_units_in_its_headers(make):
    assert _shown(make(REPAIRED)) == []
