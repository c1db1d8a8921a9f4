"""The benchmark grid: outputs, resume, corrupt cells, failing defenses, unknown names, summary and plots."""

from __future__ import annotations

import json

import matplotlib
import pandas as pd
import pytest

from unlearnlib.cli import main
from unlearnlib.cli.bench import write_grid
from unlearnlib.core.registry import DEFENSES
from unlearnlib.defenses import Defense
from unlearnlib.display import grid_markdown, plot_asr_vs_seconds, plot_asr_vs_unseen
from unlearnlib.evaluation import grid as bench
from unlearnlib.evaluation.comparison import summarise
from unlearnlib.experiment import scenario as experiment

matplotlib.use("Agg")
TINY = {"profile": "quick", "attacks": ["badnets"], "defenses": ["finetune"], "seeds": [0], "progress": False}
_SPLITS: dict = {}


@pytest.fixture(autouse=True)
def memo_splits(monkeypatch):
    """Load each split once per session (parsing mnist5k dominates a tiny grid's time)."""
    real = experiment.load_dataset

    def memo(name, seed=0, download=False, **kw):
        key = (name, seed, *sorted(kw.items()))
        if key not in _SPLITS:
            _SPLITS[key] = real(name, seed=seed, download=download, **kw)
        return _SPLITS[key]

    monkeypatch.setattr(experiment, "load_dataset", memo)


def _count_runs(monkeypatch) -> list[str]:
    calls: list[str] = []
    real = bench.run_defense

    def counting(sc, defense="none", *args, **kwargs):
        calls.append(defense)
        return real(sc, defense, *args, epochs=2, **kwargs) if defense == "finetune" else real(sc, defense, *args,
                                                                                                 **kwargs)

    monkeypatch.setattr(bench, "run_defense", counting)
    return calls


def test_tiny_grid_writes_outputs_then_resumes_and_redoes_a_corrupt_cell(tmp_path, monkeypatch):
    calls = _count_runs(monkeypatch)
    df = bench.run_grid(out=tmp_path, **TINY)
    assert calls == ["none", "finetune"]
    assert list(df["defense"]) == ["finetune", "none"] and set(df["status"]) == {"ok"}
    assert not (tmp_path / "grid.csv").exists()  # the runner returns its table; the command line writes it
    assert write_grid(df, tmp_path) == ("grid.csv", "grid.md", "asr_vs_seconds.png", "asr_vs_unseen.png")
    for name in ("grid.csv", "grid.md", "asr_vs_seconds.png", "asr_vs_unseen.png"):
        assert (tmp_path / name).stat().st_size > 0, name
    assert len(list((tmp_path / "cells").glob("*.json"))) == 2
    md = (tmp_path / "grid.md").read_text()
    assert "| badnets | none |" in md and "| badnets | finetune |" in md and "asr (%)" in md
    csv = pd.read_csv(tmp_path / "grid.csv")
    assert {"acc", "asr", "target_acc", "ra", "der", "defense_seconds", "unseen", "asr_before"} <= set(csv.columns)
    none = df[df["defense"] == "none"].iloc[0]
    assert none["asr"] == none["asr_before"] > 0.9 and none["unseen"] == 0

    calls.clear()
    again = bench.run_grid(out=tmp_path, **TINY)
    assert calls == [] and again.drop(columns="defense_seconds").equals(df.drop(columns="defense_seconds"))

    cell = bench.cell_path(tmp_path, "badnets", "finetune", 0)
    cell.write_text('{"status": "ok", "truncat')
    bench.run_grid(out=tmp_path, **TINY)
    assert calls == ["finetune"] and json.loads(cell.read_text())["status"] == "ok"

    calls.clear()  # edited package source: every cell is redone, none reused
    monkeypatch.setattr(bench, "source_fingerprint", lambda: "edited")
    bench.run_grid(out=tmp_path, **TINY)
    assert calls == ["none", "finetune"]


def test_defense_params_enter_the_cell_key_and_reach_the_defense(tmp_path, monkeypatch):
    """A variant (``params``) is never served the defaults' cell, and its record says which it ran."""
    calls = _count_runs(monkeypatch)
    bench.run_grid(out=tmp_path, **TINY)
    calls.clear()
    df = bench.run_grid(out=tmp_path, params={"finetune": {"lr": 5e-4}}, **TINY)
    assert calls == ["finetune"]  # the none cell is shared; the variant's cell is redone
    rec = json.loads(bench.cell_path(tmp_path, "badnets", "finetune", 0).read_text())
    assert rec["cell"]["defense_params"]["lr"] == "0.0005" and rec["info"]["lr"] == 5e-4
    assert set(df["status"]) == {"ok"}
    calls.clear()
    bench.run_grid(out=tmp_path, params={"finetune": {"lr": 5e-4}}, **TINY)
    assert calls == []  # resumed: the variant's own cell is reused


def test_unseen_enters_the_cell_key_and_reaches_every_defense(tmp_path, monkeypatch):
    """``unseen`` overrides each defense's own sample count; its cells are never the defaults' cells."""
    calls = _count_runs(monkeypatch)
    bench.run_grid(out=tmp_path, **TINY)
    rec = json.loads(bench.cell_path(tmp_path, "badnets", "finetune", 0).read_text())
    assert rec["cell"]["unseen"] is None and rec["unseen"] == DEFENSES.get("finetune").default_unseen != 20
    calls.clear()
    df = bench.run_grid(out=tmp_path, unseen=20, **TINY)
    assert calls == ["finetune"]  # the none cell does not depend on it and is reused
    rec = json.loads(bench.cell_path(tmp_path, "badnets", "finetune", 0).read_text())
    assert rec["cell"]["unseen"] == 20 and rec["unseen"] == 20
    assert df.loc[df["defense"] == "finetune", "unseen"].tolist() == [20]
    with pytest.raises(ValueError, match="^unseen must be an integer >= 1, got 0"):
        bench.run_grid(out=tmp_path, unseen=0, **TINY)


def test_cli_bench_unseen_reaches_the_robustness_grid(tmp_path, monkeypatch, capsys):
    from unlearnlib.cli import bench as cli_bench

    seen = {}

    def fake(cells, out, **kw):
        seen.update(kw)
        raise ValueError("stop here")

    monkeypatch.setattr(cli_bench, "run_robustness", fake)
    assert main(["bench", "--grid", "robustness", "--unseen", "200", "--out", str(tmp_path), "--no-progress"]) == 2
    assert seen["unseen"] == 200 and "stop here" in capsys.readouterr().err
    assert main(["bench", "--grid", "robustness", "--unseen", "0", "--out", str(tmp_path), "--no-progress"]) == 2
    assert "--unseen must be an integer >= 1, got 0" in capsys.readouterr().err


@pytest.mark.parametrize("params, match", [
    ({"agme": {"mu": 3}}, "params: 'agme' is not a defense of this grid; expected one of: finetune"),
    ({"finetune": {"momentum": 0.9}}, r"params\['finetune'\]: momentum not parameters of finetune; valid: epochs"),
    ({"finetune": {"optimizer": "rmsprop"}}, "optimizer"),
    ({"finetune": 3}, "must map parameter names to values"),
])
def test_bad_defense_params_fail_before_any_cell(tmp_path, params, match):
    with pytest.raises(ValueError, match=match):
        bench.run_grid(out=tmp_path, params=params, **TINY)
    assert not (tmp_path / "cells").exists()


def test_cli_bench_defense_param_must_name_its_defense(tmp_path, capsys):
    assert main(["bench", "--defenses", "finetune", "--defense-param", "lr=0.1", "--out", str(tmp_path),
                 "--no-progress"]) == 2
    assert "--defense-param must be DEFENSE:KEY=VALUE, got 'lr=0.1'" in capsys.readouterr().err


class Boom(Defense):
    name = "boom"
    default_unseen = 10

    def run(self, model, defender, *, trigger, target, num_classes):
        raise RuntimeError("the defense exploded")


def test_a_failing_defense_is_a_failed_cell_not_a_crashed_grid(tmp_path, monkeypatch, capsys):
    monkeypatch.setitem(DEFENSES._items, "boom", Boom)
    df = bench.run_grid(out=tmp_path, **{**TINY, "defenses": ["boom"]})
    write_grid(df, tmp_path)
    failed = df[df["status"] == "failed"]
    assert list(failed["defense"]) == ["boom"] and "RuntimeError: the defense exploded" in failed.iloc[0]["error"]
    assert "the defense exploded" in capsys.readouterr().err  # reported, with its traceback
    assert json.loads(bench.cell_path(tmp_path, "badnets", "boom", 0).read_text())["status"] == "failed"
    md = (tmp_path / "grid.md").read_text()
    assert "| badnets | none |" in md and "| badnets | boom | — |" in md and "0 (1 failed) |" in md
    bench.run_grid(out=tmp_path / "quiet", quiet=True, **{**TINY, "defenses": ["boom"]})
    assert "exploded" not in capsys.readouterr().err  # a chapter's grid: the failure is in its tables, not stderr
    with pytest.raises(RuntimeError, match="exploded"):
        bench.run_grid(out=tmp_path, strict=True, **{**TINY, "defenses": ["boom"]})


@pytest.mark.parametrize("kwargs, match", [
    ({"attacks": ["lira"]}, "attack='lira' is not known; expected one of: badnets, blended"),
    ({"defenses": ["magic"]}, "defense='magic' is not known; expected one of: none, "),
    ({"seeds": [-1]}, "seeds must be a non-empty list of integers >= 0"),
    ({"profile": "huge"}, "profile='huge' is not known"),
])
def test_bad_grid_arguments_name_the_parameter(tmp_path, kwargs, match):
    with pytest.raises(ValueError, match=match):
        bench.run_grid(**{**TINY, "out": tmp_path, **kwargs})
    assert not (tmp_path / "cells").exists()


def test_cli_bench_unknown_defense_lists_the_valid_ones(tmp_path, capsys):
    assert main(["bench", "--defenses", "magic", "--out", str(tmp_path), "--no-progress"]) == 2
    err = capsys.readouterr().err
    assert "defense='magic' is not known" in err and "finetune" in err


def _synthetic() -> pd.DataFrame:
    recs = []
    for d, asr, sec, n in (("none", 0.99, 0.0, 0), ("finetune", 0.9, 1.0, 175), ("agme-bdk", 0.01, 0.1, 10)):
        for seed, jitter in ((0, 0.0), (1, 0.02)):
            after = {"acc": 0.95 - jitter, "asr": asr - jitter, "target_acc": 0.98, "ra": 0.5, "asr_floor": 0.001}
            recs.append({"attack": "badnets", "defense": d, "seed": seed, "status": "ok", "unseen": n,
                         "defense_seconds": sec + jitter, "der": 0.5, "after": after, "before": after})
    return bench.cells_frame(recs)


def test_summarise_markdown_and_plots():
    s = summarise(_synthetic())
    assert list(s["defense"])[0] == "none" and set(s["n"]) == {2}
    ft = s[s["defense"] == "finetune"].iloc[0]
    assert ft["asr_mean"] == pytest.approx(0.89) and ft["asr_std"] == pytest.approx(0.01414, abs=1e-4)
    md = grid_markdown(s)
    assert "| badnets | finetune | 94.0 ± 1.4 | 89.0 ± 1.4 |" in md
    from matplotlib.figure import Figure

    for fn in (plot_asr_vs_seconds, plot_asr_vs_unseen):
        ax = fn(s, ax=Figure().subplots())
        assert ax.get_ylabel().startswith("attack success rate")
    with pytest.raises(ValueError, match="no finished"):
        summarise(_synthetic().assign(status="failed"))
