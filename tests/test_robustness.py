"""The held-out robustness grid: the sampler, cell keys, resume, the success rule, the new architectures under every
defense, and the CLI's errors. Tiny: a few hundred mnist5k digits, one epoch of training."""

from __future__ import annotations

import dataclasses
import json
import math

import matplotlib
import pandas as pd
import pytest
import torch

from unlearnlib.cli import main
from unlearnlib.cli.bench import write_robustness
from unlearnlib.core import cache as zoo
from unlearnlib.core.registry import ATTACKS as ATTACK_REGISTRY
from unlearnlib.core.registry import DEFENSES
from unlearnlib.data import load_dataset
from unlearnlib.defenses.fine_pruning import last_conv_layer
from unlearnlib.display import robustness_markdown
from unlearnlib.evaluation import grid as bench
from unlearnlib.evaluation import robustness, rule
from unlearnlib.experiment import scenario as experiment
from unlearnlib.experiment.profiles import QUICK, SMOKE, Profile
from unlearnlib.experiment.runs import run_defense
from unlearnlib.ml.edit import default_edit_layer, hidden_linears
from unlearnlib.models import build_model, last_conv_name

matplotlib.use("Agg")
NEW_ARCHS = ("lenet5", "mlp", "small-bn")
# one epoch; the recovery-based defenses at the smoke profile's few steps: the test runs the code paths
TINY = Profile(**{**QUICK.to_dict(), "name": "tiny", "epochs": 1, "defense_params": SMOKE.defense_params})
_SPLITS: dict = {}


@pytest.fixture(autouse=True)
def tiny_split(monkeypatch):
    """mnist5k cut to 600 train / 300 test / 200 defender digits (its own name: its own cache keys)."""

    def tiny(name, seed=0, download=False, **kw):
        if (name, seed) not in _SPLITS:
            s = load_dataset(name, seed=seed, download=download, **kw)
            _SPLITS[(name, seed)] = dataclasses.replace(
                s, name=f"{s.name}-tiny", train=s.train.take(600, seed), test=s.test.take(300, seed),
                defender=s.defender.take(200, seed))
        return _SPLITS[(name, seed)]

    monkeypatch.setattr(experiment, "load_dataset", tiny)


def test_sampler_is_deterministic_held_out_and_covers_every_listed_value():
    cells = robustness.sample_cells(60, grid_seed=0)
    assert cells == robustness.sample_cells(60, grid_seed=0)
    assert cells != robustness.sample_cells(60, grid_seed=1)
    assert robustness.sample_cells(10, 0) == cells[:10]  # a longer grid extends a shorter one
    seeds = [c["seed"] for c in cells]
    assert len(set(seeds)) == 60 and min(seeds) >= robustness.SEED_BASE
    assert not set(seeds) & set(robustness.TUNING_SEEDS)
    for c in cells:
        bench.check_spec(c)
        assert 0 <= c["target"] < 10
    assert {c["model"] for c in cells} == set(robustness.ARCHS)
    assert {c["poison_ratio"] for c in cells} == set(robustness.POISON_RATIOS)
    assert {c["attack"] for c in cells} == set(robustness.ATTACKS) == set(ATTACK_REGISTRY.names())
    assert len({c["target"] for c in cells}) == 10
    bad = [c["attack_params"] for c in cells if c["attack"] == "badnets"]
    bl = [c["attack_params"] for c in cells if c["attack"] == "blended"]
    assert {p["size"] for p in bad} == set(robustness.BADNETS_SIZES)
    assert {p["pattern"] for p in bad} == set(robustness.BADNETS_PATTERNS)
    assert {p["position"] for p in bad} == set(robustness.BADNETS_POSITIONS)
    assert {p["pattern"] for p in bl} == set(robustness.BLEND_PATTERNS)
    assert all(0.1 <= p["alpha"] <= 0.3 for p in bl)
    by = {a: [c["attack_params"] for c in cells if c["attack"] == a] for a in ("trojannn", "imc", "wanet")}
    assert {p["size"] for p in by["trojannn"]} <= set(robustness.TROJANNN_SIZES)
    assert {p["size"] for p in by["imc"]} <= set(robustness.IMC_SIZES)
    assert all(0.5 <= p["s"] <= 1.0 for p in by["wanet"])
    for bad_n in (0, -1, 2.5, True):
        with pytest.raises(ValueError, match="cells"):
            robustness.sample_cells(bad_n)


def test_every_spec_field_enters_the_cell_key_and_the_model_cache_key(monkeypatch):
    spec = robustness.sample_cells(1)[0]
    base = bench.cell_config(QUICK, "agme", spec, dataset=None, known_target=False, image_size=None)
    other_attack = "imc" if spec["attack"] != "imc" else "blended"
    changes = {"cell": "other", "attack": other_attack, "seed": 1001, "model": "lenet5",
               "target": (spec["target"] + 1) % 10, "poison_ratio": 0.5,
               "attack_params": {**spec["attack_params"], "size": 9}}
    for key, value in changes.items():
        other = bench.cell_config(QUICK, "agme", {**spec, key: value}, dataset=None, known_target=False,
                                  image_size=None)
        assert other != base, key
    assert bench.cell_config(QUICK, "agme", dict(spec), dataset=None, known_target=False, image_size=None) == base

    configs: list[dict] = []  # the zoo key of the attacked model: arch, target, ratio and attack params
    monkeypatch.setattr(experiment, "cached_model",
                        lambda config, build, fit, companion=None: (configs.append(config), (build(), True))[1])
    variants = [{}, {"model": "mlp"}, {"target": 7}, {"poison_ratio": 0.01}, {"attack_params": {"size": 4}}]
    for v in variants:
        experiment.make_scenario(TINY, "badnets", 1000, **{"model": "cnn", "target": 3, "poison_ratio": 0.05,
                                                           "attack_params": {"size": 3}, **v}, progress=False)
    attacked = [zoo.cache_key(c) for c in configs[1::2]]
    assert len(set(attacked)) == len(variants)


def _rows(rows):
    cols = {"defense": "x", "status": "ok", "acc_before": 0.98, "target_acc_before": 0.97, "asr_before": 1.0,
            "asr_floor_before": 0.0}
    return pd.DataFrame([{**cols, **r} for r in rows])


def test_success_rule_on_hand_made_rows():
    s = rule.success
    assert s(0.02, 0.0, 0.015, 0.03)  # exactly at every bound
    f32 = [float(torch.tensor(v, dtype=torch.float32)) for v in (0.02, 0.99, 0.975, 0.96)]  # as evaluate() returns
    assert s(f32[0], 0.0, f32[1] - f32[2], f32[1] - f32[3])  # at every bound, from float32 rates (3 of 100 images)
    assert s(0.0, 0.0, -0.01, -0.05)  # gains are fine
    assert not s(0.0201, 0.0, 0.0, 0.0) and not s(0.0, 0.0, 0.0151, 0.0) and not s(0.0, 0.0, 0.0, 0.0301)
    assert not s(float("nan"), 0.0, 0.0, 0.0) and not s(0.01, 0.0, None, 0.0)
    df = _rows([{"asr": 0.01, "acc": 0.975, "target_acc": 0.95},  # success
                {"asr": 0.01, "acc": 0.96, "target_acc": 0.97},  # acc drop 2 points
                {"asr": 0.5, "acc": 0.98, "target_acc": 0.97},  # asr
                {"asr": None, "acc": None, "target_acc": None, "status": "failed"}])
    j = rule.judged(df)
    assert list(j["success"]) == [True, False, False, False]
    assert j["badness"].iloc[2] == pytest.approx(25.0) and math.isinf(j["badness"].iloc[3])
    summ = robustness.summarise(df).iloc[0]
    assert (summ["successes"], summ["planted"], summ["failed"]) == (1, 4, 1) and summ["success_rate"] == 0.25
    assert summ["asr_worst"] == 0.5 and summ["acc_drop_worst"] == pytest.approx(0.02)
    assert math.isnan(summ["right_target"])  # a defense that names no target
    named = robustness.summarise(df.assign(target=3, found_target=[3, 3, 5, None])).iloc[0]
    assert named["right_target"] == 2  # of the 4 planted cells: the failed run named none, one named class 5


def test_the_asr_bound_rises_with_the_clean_models_own_rate():
    """asr <= max(2%, the clean model's rate for the trigger + 1 point): natural errors into the target are not a
    backdoor a defense could remove."""
    assert rule.asr_bound(0.0) == rule.ASR_MAX and rule.asr_bound(0.05) == pytest.approx(0.06)
    assert rule.asr_bound(float("nan")) == rule.ASR_MAX
    assert rule.success(0.055, 0.05, 0.0, 0.0) and not rule.success(0.065, 0.05, 0.0, 0.0)
    assert not rule.success(0.025, 0.005, 0.0, 0.0)  # a floor of 0.5%: the 2% bound holds
    j = rule.judged(_rows([{"asr": 0.055, "acc": 0.98, "target_acc": 0.97, "asr_floor_before": 0.05}]))
    assert bool(j["success"].iloc[0]) and j["asr_bound"].iloc[0] == pytest.approx(0.06)


def test_a_target_drop_fails_only_when_it_is_significant():
    """Over 3 points and p < 0.05 in the one-sided exact McNemar test on the target class's images: 6 lost and 0
    gained (p = 1/64) fails; 6 lost and 3 gained (3 points net, p = 0.25) does not; 5 lost, 0 gained on a 4-point
    drop (p = 1/32) fails; counts unknown: the drop alone decides."""
    assert rule.mcnemar_p(6, 0) == pytest.approx(1 / 64) and rule.mcnemar_p(0, 0) == 1.0
    assert rule.mcnemar_p(6, 3) == pytest.approx(130 / 512)  # P(X >= 6), X ~ Bin(9, 1/2)
    assert rule.mcnemar_p(float("nan"), 1) == 0.0
    assert not rule.success(0.0, 0.0, 0.0, 0.06, 6, 0)
    assert rule.success(0.0, 0.0, 0.0, 0.031, 6, 3)  # over the bound, not significant
    assert not rule.success(0.0, 0.0, 0.0, 0.05, 5, 0)  # p = 1/32
    assert rule.mcnemar_p(5, 1) == pytest.approx(7 / 64) and rule.success(0.0, 0.0, 0.0, 0.04, 5, 1)
    assert not rule.success(0.0, 0.0, 0.0, 0.04)  # no counts: the 3-point bound alone
    j = rule.judged(_rows([{"asr": 0.0, "acc": 0.98, "target_acc": 0.91, "target_lost": 6, "target_gained": 0},
                           {"asr": 0.0, "acc": 0.98, "target_acc": 0.94, "target_lost": 6, "target_gained": 3}]))
    assert list(j["success"]) == [False, True] and list(j["breaks_target_acc_drop"]) == [True, False]
    assert j["badness"].iloc[1] == pytest.approx(1.0)  # over the bound, not significant: at most 1


def test_wilson_interval():
    lo, hi = rule.wilson(8, 10)
    assert lo == pytest.approx(0.4902, abs=1e-3) and hi == pytest.approx(0.9433, abs=1e-3)
    assert rule.wilson(0, 5)[0] == 0.0 and rule.wilson(5, 5)[1] == 1.0 and math.isnan(rule.wilson(0, 0)[0])


def test_planted_cells_and_success_per_architecture_and_attack():
    """A cell whose attack did not take (asr before < 50%) is judged on accuracy alone and counted apart; the
    success rate is over the planted cells, with its 95% interval, per architecture and per attack too."""
    df = _rows([{"cell": "a", "model": "cnn", "attack": "badnets", "asr": 0.01, "acc": 0.975, "target_acc": 0.95},
                {"cell": "b", "model": "mlp", "attack": "wanet", "asr": 0.3, "acc": 0.98, "target_acc": 0.97,
                 "asr_before": 0.3},  # not planted: no harm done is all it is asked
                {"cell": "c", "model": "mlp", "attack": "badnets", "asr": 0.5, "acc": 0.98, "target_acc": 0.97,
                 "asr_before": 0.5},  # exactly at the bar: planted
                {"cell": "d", "model": "cnn", "attack": "wanet", "asr": None, "acc": None, "target_acc": None,
                 "status": "failed", "asr_before": None}])
    j = rule.judged(df)
    assert list(j["planted"]) == [True, False, True, False] and list(j["success"]) == [True, True, False, False]
    summ = robustness.summarise(df).iloc[0]
    assert (summ["planted"], summ["successes"], summ["success_rate"]) == (2, 1, 0.5)
    assert (summ["ci_low"], summ["ci_high"]) == pytest.approx(rule.wilson(1, 2))
    assert summ["harmless_rate"] == 0.5  # b kept its accuracy; d raised
    by_model = robustness.success_by(df, "model").set_index("model")
    assert by_model["n"].to_dict() == {"cnn": 1, "mlp": 1} and by_model["successes"].to_dict() == {"cnn": 1, "mlp": 0}
    by_attack = robustness.success_by(df, "attack")
    assert by_attack["attack"].tolist() == ["badnets"] and by_attack["success_rate"].tolist() == [0.5]
    md = robustness_markdown(df.assign(target=0, poison_ratio=0.1, attack_params="{}", error=None))
    assert "Planted: 2 of 4 cells." in md and "| x | 2 (1 failed) | 1 | 50.0 |" in md
    assert "| x | cnn | 1 | 1 | 100.0 |" in md
    with pytest.raises(ValueError, match="by must be a column"):
        robustness.success_by(df, "arch")


def test_generic_layers_of_the_new_architectures():
    layers = {a: build_model(a, 1, 10, 28) for a in NEW_ARCHS}
    for m in layers.values():
        assert not hasattr(m, "edit_layer") and not hasattr(m, "last_conv")
        assert m(torch.rand(2, 1, 28, 28)).shape == (2, 10)
    assert default_edit_layer(layers["lenet5"]) == "f5" and last_conv_name(layers["lenet5"]) == "c3"
    assert default_edit_layer(layers["lenet5"], "last") == "f6"
    assert default_edit_layer(layers["mlp"]) == "hidden.0" and last_conv_name(layers["mlp"]) is None
    assert default_edit_layer(layers["mlp"], "last") == "hidden.1"
    from unlearnlib.attacks.trojannn import neuron_layer  # the attack's neurons did not move with the edit's rule
    from unlearnlib.models import get_layer

    for arch, name in (("lenet5", "f6"), ("mlp", "hidden.1")):
        assert neuron_layer(layers[arch]) == (get_layer(layers[arch], name), True)
    assert last_conv_layer(layers["mlp"])[0] == "hidden.1"
    assert default_edit_layer(layers["small-bn"]) == default_edit_layer(layers["small-bn"], "last") == "classifier"
    assert last_conv_layer(layers["small-bn"])[0] == "blocks.2.0"


@pytest.mark.slow
@pytest.mark.parametrize("arch", NEW_ARCHS)
def test_every_defense_runs_on_each_new_architecture(arch):
    sc = experiment.make_scenario(TINY, "badnets", 1000, model=arch, target=3, attack_params={"size": 4},
                                  progress=False)
    state = {k: v.clone() for k, v in sc.backdoored.state_dict().items()}
    for defense in DEFENSES.names():
        rec = run_defense(sc, defense, device="cpu", progress=False).record
        assert all(math.isfinite(v) for v in rec["after"].values()), (defense, rec["after"])
        after = sc.backdoored.state_dict()
        assert all(torch.equal(state[k], after[k]) for k in state), f"{defense} modified the input model"
        if defense == "fine-pruning":
            assert rec["info"]["layer"] == last_conv_layer(sc.backdoored)[0]
        if defense == "agme-bdk":  # the generic rules, no name needed: every hidden Linear in turn with the true
            hidden = hidden_linears(sc.backdoored)  # trigger (the BatchNorm network has none: its output layer)
            assert rec["info"]["layers"] == (hidden if len(hidden) >= 2 else [default_edit_layer(sc.backdoored)])
            assert arch == "small-bn" or len(rec["info"]["layers"]) == 2
        if defense in ("agme", "agme-repair"):  # ... and the last one with a recovered trigger
            assert rec["info"]["layers"] == [default_edit_layer(sc.backdoored, "last")]


def test_grid_writes_outputs_and_resume_skips_finished_cells(tmp_path, monkeypatch):
    specs = [s for s in robustness.sample_cells(12) if s["model"] in ("cnn", "mlp")][:2]
    monkeypatch.setattr(robustness, "sample_cells", lambda cells, grid_seed=0: specs[:cells])
    calls: list[str] = []
    real = bench.run_defense

    def counting(sc, defense="none", *a, **kw):
        calls.append(defense)
        return real(sc, defense, *a, **kw)

    monkeypatch.setattr(bench, "run_defense", counting)
    kw = {"profile": TINY, "defenses": ["agme-bdk", "finetune"], "progress": False}
    df = robustness.run_robustness(2, tmp_path, **kw)
    assert len(calls) == 6 and set(df["status"]) == {"ok"} and len(df) == 6
    assert set(df["cell"]) == {s["cell"] for s in specs} and set(df["model"]) == {s["model"] for s in specs}
    assert write_robustness(df, tmp_path) == ("robustness.csv", "robustness.md", "robustness.png")
    for name in ("robustness.csv", "robustness.md", "robustness.png"):
        assert (tmp_path / name).stat().st_size > 0, name
    md = (tmp_path / "robustness.md").read_text()
    assert "| agme-bdk |" in md and "success %" in md and "Worst cells" in md
    rec = json.loads((tmp_path / "cells" / f"{specs[0]['cell']}__finetune.json").read_text())
    assert rec["scenario"] == specs[0] and rec["cell"]["scenario"] == specs[0]

    calls.clear()
    again = robustness.run_robustness(2, tmp_path, **kw)
    assert calls == [] and again.drop(columns="defense_seconds").equals(df.drop(columns="defense_seconds"))
    (tmp_path / "cells" / f"{specs[1]['cell']}__agme-bdk.json").unlink()
    robustness.run_robustness(2, tmp_path, **kw)
    assert calls == ["agme-bdk"]


@pytest.mark.parametrize("argv, message", [
    (["--grid", "robustness", "--cells", "0"], "--cells must be an integer >= 1"),
    (["--cells", "5"], "--cells applies only to --grid robustness"),
    (["--grid", "robustness", "--seeds", "0"], "--seeds: not valid with --grid robustness"),
    (["--grid", "robustness", "--defenses", "nope"], "defense='nope' is not known"),
])
def test_bad_grid_arguments_get_clear_errors(argv, message, tmp_path, capsys):
    assert main(["bench", "--out", str(tmp_path), "--no-progress", *argv]) == 2
    assert message in capsys.readouterr().err


@pytest.mark.parametrize("argv", [["--grid", "nope"], ["--grid", "robustness", "--cells", "x"]])
def test_unparseable_grid_arguments_exit_with_usage(argv, capsys):
    with pytest.raises(SystemExit) as exc:
        main(["bench", *argv])
    assert exc.value.code == 2
    err = capsys.readouterr().err
    assert "--grid" in err or "--cells" in err


def test_repair_stages_count_what_the_repair_gave_back_and_what_it_raised():
    """Per ``<defense>+repair``: the target class and the asr after unlearning and after the repair, the cells the
    repair raised (more than one point) or pushed over the asr bound, and the largest rise with its cell."""
    rep = {"defense": "agme+repair", "target_acc_before": 0.97}
    df = _rows([
        {**rep, "cell": "a", "target_acc_unlearned": 0.90, "target_acc": 0.96, "asr_unlearned": 0.010, "asr": 0.030},
        {**rep, "cell": "b", "target_acc_unlearned": 0.97, "target_acc": 0.97, "asr_unlearned": 0.200, "asr": 0.215},
        {**rep, "cell": "c", "target_acc_unlearned": 0.93, "target_acc": 0.92, "asr_unlearned": 0.050, "asr": 0.040},
        {**rep, "cell": "d", "status": "failed", "target_acc_unlearned": None, "target_acc": None,
         "asr_unlearned": None, "asr": None},
        {"defense": "agme", "cell": "a", "target_acc_unlearned": None, "target_acc": 0.90, "asr_unlearned": None,
         "asr": 0.01},
    ]).assign(acc=0.98)
    r = robustness.repair_stages(df)
    assert r["defense"].tolist() == ["agme+repair"]  # only the compositions, only finished cells
    x = r.iloc[0]
    assert x["cells"] == 3
    assert (x["target_ok_unlearned"], x["target_ok"]) == (1, 2)  # a: 7 -> 1 point, b: 0 -> 0, c: 4 -> 5
    assert x["target_acc_drop_unlearned_median"] == pytest.approx(0.04)
    assert x["target_acc_drop_median"] == pytest.approx(0.01)
    assert x["asr_unlearned_median"] == pytest.approx(0.05) and x["asr_median"] == pytest.approx(0.04)
    assert x["raised"] == 2  # a (+2 points) and b (+1.5); c went down
    assert x["pushed_over"] == 1  # a: 1% -> 3%
    assert x["largest_rise"] == pytest.approx(0.02) and x["largest_rise_cell"] == "a"
    md = robustness_markdown(df.assign(target=0, poison_ratio=0.1, attack_params="{}", error=None,
                                          model="cnn", attack="badnets"))
    assert "| agme+repair | 3 | 4.0 -> 1.0 | 1 -> 2 | 5.0 -> 4.0 | 2 | 1 | 2.0 (a) |" in md
    plain = df[df["defense"] == "agme"]
    assert robustness.repair_stages(plain).empty and robustness.repair_stages(plain.drop(
        columns=["target_acc_unlearned"])).empty
    assert "The repair step" not in robustness_markdown(plain.assign(
        target=0, poison_ratio=0.1, attack_params="{}", error=None, model="cnn", attack="badnets"))


def test_a_shared_memo_lets_a_second_grid_call_reuse_the_recoveries(tmp_path, monkeypatch):
    """Chapter 8 runs the ``+repair`` compositions after the defaults: with one memo the blind edit's recovery is
    computed once per cell, not once per call."""
    from unlearnlib.core.memo import RecoveryMemo

    spec = next(s for s in robustness.sample_cells(12) if s["model"] == "cnn")
    monkeypatch.setattr(robustness, "sample_cells", lambda cells, grid_seed=0: [spec])
    memo = RecoveryMemo()
    kw = {"profile": TINY, "progress": False, "quiet": True, "shared": memo}
    robustness.run_robustness(1, tmp_path, defenses=["agme"], **kw)
    assert len(memo.results) == 2 and memo.credited == 0.0  # the recovery, and the agme run
    second = robustness.run_robustness(1, tmp_path, defenses=["agme+repair"], **kw)
    assert len(memo.results) == 2 and memo.credited > 0.0  # reused, and its seconds credited to the defense
    assert set(second["defense"]) == {"none", "agme+repair"}
    cells = tmp_path / "cells"
    plain = json.loads((cells / f"{spec['cell']}__agme.json").read_text())
    composed = json.loads((cells / f"{spec['cell']}__agme+repair.json").read_text())
    assert plain["info"]["run_reused"] is False and composed["info"]["run_reused"] is True  # the whole inner run
    assert composed["unlearned"] == plain["after"]  # the repair started from exactly the agme run
    assert composed["defense_seconds"] >= plain["defense_seconds"]  # credited: what it costs on its own
    with pytest.raises(ValueError, match="shared must be None or an unlearnlib.RecoveryMemo"):
        robustness.run_robustness(1, tmp_path, profile=TINY, defenses=["agme"], progress=False, shared={})
