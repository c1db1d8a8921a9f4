"""The retuning attack (unlearnlib.evaluation.reactivation): the same poisoned images retune the defended, the clean
and the backdoored model; a defense's gap is its asr after retuning minus the clean model's."""

from __future__ import annotations

import pytest
import torch

from unlearnlib.evaluation.reactivation import Retuning, reactivation, retuning_set
from unlearnlib.experiment import make_scenario, run_defense


@pytest.fixture(scope="module")
def sc():
    return make_scenario("quick", "badnets", 0, progress=False)


def test_the_retuning_set_poisons_a_few_images_of_the_other_classes(sc):
    p = Retuning(images=60, poisoned=6)
    data = retuning_set(sc, p, seed=0)
    clean = sc.split.defender.take(60, 0)
    changed = (data.x != clean.x).flatten(1).any(1)
    assert int(changed.sum()) == 6 and bool((clean.y[changed] != sc.target).all())
    assert bool((data.y[changed] == sc.target).all()) and torch.equal(data.y[~changed], clean.y[~changed])
    assert torch.equal(retuning_set(sc, p, seed=0).x, data.x)  # the same images every time
    with pytest.raises(ValueError, match="poisoned must be at most images"):
        Retuning(images=5, poisoned=6)


def test_reactivation_retunes_the_three_models_on_the_same_images(sc):
    p = Retuning(images=100, poisoned=5, epochs=2, batch_size=50)
    defended = run_defense(sc, "agme-bdk", progress=False).model
    out = reactivation(sc, defended, p)
    assert out["steps"] == [0, 2, 4] and set(out["curves"]) == {"defended", "clean", "backdoored"}
    assert all(len(v) == 3 for v in out["curves"].values())
    assert out["curves"]["backdoored"][0] == pytest.approx(sc.before["asr"])  # before any step: the model itself
    assert out["curves"]["clean"][0] == pytest.approx(sc.asr_floor)
    assert out["curves"]["defended"][0] < 0.05  # the edit removed it
    assert out["gap"] == pytest.approx(out["curves"]["defended"][-1] - out["curves"]["clean"][-1])
    assert reactivation(sc, defended, p)["curves"] == out["curves"]  # deterministic on the CPU


def test_the_grid_retunes_after_each_defense_and_stores_it_as_evidence(tmp_path, capsys):
    from unlearnlib.cli import main
    from unlearnlib.evaluation import evidence
    from unlearnlib.evaluation.reactivation import summarise_reactivation

    out = tmp_path / "react"
    assert main(["bench", "--attacks", "badnets", "--seeds", "0", "--defenses", "agme-bdk", "--retune", "--out",
                 str(out), "--no-progress"]) == 0
    assert "reactivation.md" in capsys.readouterr().out
    df, prov = evidence.load(out)
    assert prov["grid"] == "comparison" and prov["table"] == "grid.csv" and prov["retuning"] == {
        "images": 200, "poisoned": 10, "epochs": 8, "lr": 1e-3, "batch_size": 64}
    row = df[df["defense"] == "agme-bdk"].iloc[0]
    assert row["reactivation_gap"] == pytest.approx(row["retuned_defended"] - row["retuned_clean"])
    assert row["retuned_backdoored"] > 0.9 and row["asr"] < 0.02
    s = summarise_reactivation(df).set_index("defense")
    assert list(s.index) == ["agme-bdk"] and s.loc["agme-bdk", "removed"] == 1
    checked = evidence.verify(out, rows=1, defenses=["agme-bdk"])
    assert checked["problems"].iloc[0] == [] and "retuned_defended" in checked["again"].iloc[0]
