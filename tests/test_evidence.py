"""The evidence in results/ is verified, not trusted: stored rows of the final grid are run again at the current code
and must give the same numbers (exactly on the CPU the provenance names, within the stated tolerance elsewhere);
a perturbed row must fail the comparison."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest

from unlearnlib.evaluation import evidence, robustness, rule
from unlearnlib.evaluation.robustness import TUNING_GRID_SEEDS

ROOT = Path(__file__).resolve().parents[1]
FINAL = ROOT / "results" / "final-grid"
ROWS = 2  # stored rows run again: two cells' models and defenses, within the test budget


@pytest.fixture(scope="module")
def stored():
    return evidence.load(FINAL)


def test_the_final_grid_is_stored_with_its_provenance(stored):
    df, prov = stored
    for key in ("commit", "command", "profile", "grid_seed", "cells", "defenses", "versions", "cpu", "wall_seconds"):
        assert prov.get(key) not in (None, ""), key
    assert prov["cells"] >= 120 and df["cell"].nunique() == prov["cells"]
    assert prov["grid_seed"] not in TUNING_GRID_SEEDS  # a grid no choice has looked at
    assert f"--grid-seed {prov['grid_seed']}" in prov["command"] and f"--cells {prov['cells']}" in prov["command"]
    assert set(prov["defenses"]) == set(df["defense"]) - {"none"} and "agme-bdk+repair" in prov["defenses"]
    cells = robustness.sample_cells(prov["cells"], prov["grid_seed"])
    assert [json.dumps(evidence.spec_of(r), sort_keys=True) for _, r in df.drop_duplicates("cell").iterrows()] == [
        json.dumps(c, sort_keys=True) for c in cells]  # the rows are the grid the seed draws, cell for cell


def test_the_stored_rows_are_judged_by_the_current_rule(stored):
    df, _ = stored
    again = rule.judged(df)
    assert again["success"].tolist() == df["success"].tolist()
    assert again["planted"].tolist() == df["planted"].tolist()


@pytest.fixture(scope="module")
def verified(stored):
    return evidence.verify(FINAL, rows=ROWS, seed=0)


@pytest.mark.slow
def test_stored_cells_reproduce_at_this_code(verified):
    assert len(verified) == ROWS
    assert all(p == [] for p in verified["problems"]), verified.to_dict("records")


@pytest.mark.slow
def test_a_perturbed_row_fails_the_comparison(stored, verified):
    df, _ = stored
    row = df[(df["cell"] == verified["cell"].iloc[0]) & (df["defense"] == verified["defense"].iloc[0])].iloc[0]
    again = verified["again"].iloc[0]
    exact = bool(verified["exact"].iloc[0])
    assert evidence.compare(row, again, exact) == []
    for key, by in (("asr", 0.2), ("target_lost", 10)):  # past any tolerance
        bad = pd.Series({**row.to_dict(), key: float(row[key]) + by})
        assert any(p.startswith(f"{key}:") for p in evidence.compare(bad, again, exact))
    nudged = pd.Series({**row.to_dict(), "acc": float(row["acc"]) + 0.001})  # one test image
    assert bool(evidence.compare(nudged, again, True)) and not evidence.compare(nudged, again, False)


STUDIES = {"reactivation-tuning": ("comparison", "backdoored", True),  # folder: (grid, victim, retuned)
           "reactivation-grid": ("robustness", "backdoored", True),
           "clean-tuning": ("comparison", "clean", False), "clean-grid": ("robustness", "clean", False)}


@pytest.mark.parametrize("name", sorted(STUDIES))
def test_the_studies_of_is_it_really_gone_are_stored_with_their_provenance(name):
    df, prov = evidence.load(ROOT / "results" / name)
    grid, victim, retuned = STUDIES[name]
    assert (prov["grid"], prov["victim"], bool(prov["retuning"])) == (grid, victim, retuned)
    assert set(prov["defenses"]) == set(df["defense"]) - {"none"} and "agme-bdk+repair" in prov["defenses"]
    assert not prov["dirty"] and len(prov["commit"]) == 40
    if grid == "robustness":  # the final grid's first cells, drawn by its seed
        final = json.loads((FINAL / "provenance.json").read_text())
        assert prov["grid_seed"] == final["grid_seed"] and prov["cells"] < final["cells"]
        assert list(df.drop_duplicates("cell")["cell"]) == [c["cell"] for c in
                                                           robustness.sample_cells(prov["cells"], prov["grid_seed"])]
    else:
        assert prov["seeds"] == [0, 1, 2]
    assert set(df["victim"]) == {victim} and (df["status"] == "ok").all()
    assert ("reactivation_gap" in df) == retuned


@pytest.mark.slow
@pytest.mark.parametrize("name", ["reactivation-tuning", "clean-grid"])
def test_a_stored_row_of_each_study_reproduces(name):
    checked = evidence.verify(ROOT / "results" / name, rows=1, seed=0, defenses=["agme-bdk"])
    assert checked["problems"].iloc[0] == [], checked.to_dict("records")


def test_on_another_cpu_only_rows_of_defenses_that_do_not_search_are_compared(tmp_path, monkeypatch, stored):
    df, prov = stored
    rows = df[(df["status"] == "ok") & (df["attack"] != "wanet")].head(24)  # blind and known-trigger rows
    assert rows["defense"].isin(["agme", "baerase"]).any()
    rows.to_csv(tmp_path / prov.get("table", evidence.CSV), index=False)
    (tmp_path / "provenance.json").write_text(json.dumps({**prov, "cpu": "another CPU"}))
    monkeypatch.setattr(evidence, "rerun", lambda row, p: {k: row[k] for k in evidence.compared(p)})
    checked = evidence.verify(tmp_path, rows=len(rows), seed=0)
    assert not checked["exact"].any() and all(p == [] for p in checked["problems"])
    assert set(checked["defense"]) == {d for d in rows["defense"] if d in
                                       ("none", "agme-bdk", "agme-bdk+repair", "finetune", "fine-pruning")}


def test_a_run_is_dirty_for_changed_code_not_for_changed_results(tmp_path):
    """``make evidence`` runs one study after another: the results the first one wrote must not mark the next one's
    provenance dirty, while a changed tracked file anywhere else must."""
    import subprocess

    def git(*args: str) -> None:
        subprocess.run(["git", "-c", "user.name=t", "-c", "user.email=t@t", *args], cwd=tmp_path, check=True,
                       capture_output=True)

    (tmp_path / "results" / "grid").mkdir(parents=True)
    (tmp_path / "results" / "grid" / "robustness.csv").write_text("a\n")
    (tmp_path / "code.py").write_text("x = 1\n")
    (tmp_path / "results.py").write_text("y = 1\n")  # a name that merely starts like the folder still counts
    git("init", "-q")
    git("add", ".")
    git("commit", "-qm", "start")
    sub = tmp_path / "results" / "grid"
    assert evidence.source_state(sub) == {"commit": evidence.source_state(tmp_path)["commit"], "dirty": False}
    (sub / "robustness.csv").write_text("b\n")
    (tmp_path / "notes.txt").write_text("untracked\n")
    assert evidence.source_state(sub)["dirty"] is False
    (tmp_path / "results.py").write_text("y = 2\n")
    assert evidence.source_state(sub)["dirty"] is True
    (tmp_path / "results.py").write_text("y = 1\n")
    (tmp_path / "code.py").write_text("x = 2\n")
    assert evidence.source_state(tmp_path)["dirty"] is True


def test_a_rerun_case_states_the_stored_numbers_and_whether_the_rerun_agrees(monkeypatch, stored):
    from types import SimpleNamespace

    df, prov = stored
    row = df[df["planted"] & df["found_target"].notna() & (df["defense"] == "agme")].iloc[0]
    sc = SimpleNamespace(target=int(row["target"]))
    found = int(row["found_target"])
    same = SimpleNamespace(record={"after": {"asr": float(row["asr"]) + 0.05}, "info": {"recovered_target": found}})
    other = SimpleNamespace(record={"after": {"asr": 0.5}, "info": {"recovered_target": (found + 1) % 10}})
    facts = evidence.case_facts(row, sc, same)
    assert facts["reproduced"] == 1 and facts["found_class"] == found and facts["cell"] == row["cell"]
    assert facts["asr_after"] == round(100 * float(row["asr"]), 1) and facts["found"] == int(found == sc.target)
    off = evidence.case_facts(row, sc, other)
    assert off["reproduced"] == 0 and off["rerun_found_class"] == (found + 1) % 10 and off["rerun_asr"] == 50.0
    monkeypatch.setattr(evidence, "machine", lambda: "another CPU, 2 cores")
    text = evidence.rerun_summary([facts, off], prov)
    assert "1 of the 2 cells gave their stored numbers" in text and f"{row['cell']} named class" in text
    assert "another processor" in text and "a bug" not in text
    monkeypatch.setattr(evidence, "machine", lambda: prov["cpu"])
    assert "a bug" in evidence.rerun_summary([facts, off], prov)
    assert evidence.rerun_summary([facts], prov).endswith("and the asr within 10 points).")  # all agree: no more
