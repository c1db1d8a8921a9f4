"""``bench --scaling``: one fresh process per (model, defense) cell, seconds, peak memory and the edit's solve."""

from __future__ import annotations

import pandas as pd
import pytest

from unlearnlib.cli import main
from unlearnlib.display.markdown import scaling_markdown as to_markdown
from unlearnlib.evaluation.scaling import machine, run_scaling
from unlearnlib.ml.edit import solve_form


def test_solve_form_follows_ridge_solve():
    assert solve_form(100, 4608, 1.0) == "dual" and solve_form(5000, 144, 1.0) == "primal"
    assert solve_form(100, 4608, 0.0) == "primal"  # no ridge: the d x d system (it raises when singular)


@pytest.mark.slow
def test_bench_scaling_cli_writes_the_table(tmp_path, capsys):
    assert main(["bench", "--scaling", "--models", "cnn", "--defenses", "agme-bdk", "--unseen", "5",
                 "--device", "cpu", "--out", str(tmp_path), "--no-progress"]) == 0
    df = pd.read_csv(tmp_path / "scaling.csv")
    assert len(df) == 1 and df.at[0, "status"] == "ok", df.to_dict("records")
    r = df.iloc[0]
    assert r["model"] == "cnn" and r["input"] == "1x28x28" and r["params"] > 100_000
    assert 0 < r["edit_seconds"] <= r["seconds"] and 0 < r["solve_seconds"] <= r["edit_seconds"]
    assert r["mem_method"] in ("VmHWM", "ru_maxrss delta") and r["threads"] >= 1
    assert r["layers"] == "fc1" and str(r["dims"]) == "1568"  # agme-bdk's default layer: 32 channels x 7 x 7 in
    assert r["solve_forms"] == solve_form(int(r["keys"]), 1568, 1.0) == "dual"  # 5 x 25 x 2 keys < 1568
    md = (tmp_path / "scaling.md").read_text()
    assert machine() in md and "fc1 (1568," in md
    assert "agme-bdk" in capsys.readouterr().out
    # --defense-param reaches the timed defense: 3 of the 25 shifts per sample
    assert main(["bench", "--scaling", "--models", "cnn", "--defenses", "agme-bdk", "--unseen", "5", "--device", "cpu",
                 "--defense-param", "agme-bdk:key_shifts=3", "--out", str(tmp_path), "--no-progress"]) == 0
    assert pd.read_csv(tmp_path / "scaling.csv").at[0, "keys"] == 5 * 3 * 2


@pytest.mark.slow
def test_a_failing_cell_is_a_row_not_a_crash():
    df = run_scaling(["cnn"], ["agme-bdk"], unseen=5, params={"agme-bdk": {"lam": "x"}}, progress=False)
    assert df.at[0, "status"] == "failed" and "lam" in df.at[0, "error"]
    assert "failed: " in to_markdown(df)
