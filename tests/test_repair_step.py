"""Repair as a step of its own: the ``+repair`` compositions, the repair edit, and what they report."""

from __future__ import annotations

import copy
import re

import pytest
import torch

from unlearnlib.core.registry import DEFENSES
from unlearnlib.defenses import get_defense
from unlearnlib.defenses.compose_repair import compose_repair, output_layer, repair, repairable
from unlearnlib.evaluation.rule import TARGET_ACC_DROP_MAX
from unlearnlib.experiment.runs import run_defense
from unlearnlib.experiment.scenario import make_scenario
from unlearnlib.ml.edit import edit_layers
from unlearnlib.ml.triggers import apply_trigger
from unlearnlib.recovery.target_search import KEEP_RATE

_RECOVER = {"gen_steps": 10, "search_steps": 3, "hidden": 32, "gen_batch_size": 32}
CHEAP = {  # a few steps of each inner defense: these tests check the composition, not the defenses' strength
    "baerase": {**_RECOVER, "epochs": 2},
    "nc-unlearn": {"nc_steps": 20, "epochs": 2},
    "agme": {"recover": "nc", "nc_steps": 20},
    "agme-bdk": {},
}


@pytest.fixture(scope="module")
def sc():
    return make_scenario("quick", "badnets", 0, progress=False)


def test_every_unlearning_defense_has_a_registered_repair_variant():
    for name in repairable():
        cls = DEFENSES.get(f"{name}+repair")
        assert cls.name == f"{name}+repair" and cls.inner == name
        assert cls.default_unseen == DEFENSES.get(name).default_unseen
    assert "agme-repair" in DEFENSES  # the AGME re-solve stays available under its own name


@pytest.mark.parametrize("name", ["finetune", "fine-pruning", "none", "agme-repair", "agme+repair"])
def test_composition_rejects_what_is_not_an_unlearning_defense(name):
    with pytest.raises(ValueError, match=re.escape(f"defense={name!r} is not an unlearning defense")):
        compose_repair(name)


def test_bad_repair_parameters_name_themselves():
    with pytest.raises(ValueError, match="^keep_weight must be > 0"):
        get_defense("agme-bdk+repair", keep_weight=0)
    with pytest.raises(ValueError, match="^hold_weight must be a finite number >= 0"):
        get_defense("agme-bdk+repair", hold_weight=-1)
    with pytest.raises(ValueError, match="^augment_repair must be True or False"):
        get_defense("baerase+repair", augment_repair="yes")
    with pytest.raises(ValueError, match="^repair_hold must be one of 'lower', 'cleaned'"):
        get_defense("baerase+repair", repair_hold="min")
    with pytest.raises(ValueError, match="^repair_hold_kinds must be one of 'used', 'firing' .hold the trigger"):
        get_defense("baerase+repair", repair_hold_kinds="all")
    with pytest.raises(ValueError, match="^hold must be one of"):
        repair(torch.nn.Linear(1, 2), torch.nn.Linear(1, 2), None, None, 0, hold="upper")
    with pytest.raises(ValueError, match="^nc_lam must be a finite number >= 0"):  # inner parameters are checked
        get_defense("agme+repair", nc_lam=-1)


@pytest.mark.parametrize("name", repairable())
def test_every_repair_variant_runs_and_reports_three_stages(sc, name):
    before = copy.deepcopy(sc.backdoored)
    run = run_defense(sc, f"{name}+repair", 60, progress=False, **CHEAP[name])
    rec = run.record
    assert all(torch.equal(a, b) for a, b in zip(sc.backdoored.state_dict().values(), before.state_dict().values()))
    tacc = rec["info"]["target_acc"]
    assert tacc == {"before": rec["before"]["target_acc"], "unlearned": rec["unlearned"]["target_acc"],
                    "repaired": rec["after"]["target_acc"]}
    assert set(rec["info"]["defender_target_acc"]) == {"before", "unlearned", "repaired"}
    assert rec["info"]["inner_defense"] == name and rec["info"]["repair_layers"] == ["fc2"]
    assert rec["info"]["repair_target"] == sc.target  # recovered (or inferred from the known trigger)
    assert rec["after"]["asr"] <= rec["unlearned"]["asr"] + 0.02  # the repair does not bring the backdoor back
    assert (rec["detected"] is None) == DEFENSES.get(name).needs_trigger  # a blind one decides: True or False


def test_repair_gives_the_target_class_back_and_holds_the_trigger(sc):
    """A planted toy case: the true trigger unlearned (closed-form edit), then the target class pushed down at the
    output (what unlearning a target-like recovered trigger does); repair with the trigger held."""
    unseen = sc.defender(50)
    unlearned = copy.deepcopy(sc.backdoored)
    edit_layers(unlearned, unseen.x, sc.trigger, mu=1.0)
    with torch.no_grad():
        unlearned.fc2.bias[sc.target] -= 10.0
    m_unl = sc.metrics(unlearned)
    repaired, info = repair(sc.backdoored, copy.deepcopy(unlearned), unseen, sc.trigger, sc.target)
    m_rep = sc.metrics(repaired)
    assert m_unl["target_acc"] < sc.before["target_acc"] - 0.05  # the toy case really costs the target class
    assert sc.before["target_acc"] - m_rep["target_acc"] <= TARGET_ACC_DROP_MAX + 1e-6  # at most 3 points
    assert m_rep["asr"] <= m_unl["asr"] + 0.02  # the backdoor does not come back
    assert m_rep["acc"] >= m_unl["acc"] - 0.005
    assert info["repair_layers"] == ["fc2"] and info["repair_keys"] == 9 * int((unseen.y == sc.target).sum())
    others = torch.arange(10) != sc.target  # only the target's score is repaired
    assert torch.equal(repaired.fc2.weight[others], unlearned.fc2.weight[others])
    assert torch.equal(repaired.fc2.bias[others], unlearned.fc2.bias[others])
    assert not torch.equal(repaired.fc2.weight[sc.target], unlearned.fc2.weight[sc.target])
    assert info["repair_rows"] == f"target {sc.target} of fc2"


def test_repair_does_not_raise_the_triggered_target_score_with_the_target_class(sc):
    """The toy above: the repair lifts the target class's score back, but holds the triggered images' at the lower
    of their cleaned and unlearned values (``hold="lower"``); held at the cleaned value alone (``"cleaned"``, the
    first version) they rose with the target class."""
    unseen = sc.defender(50)
    unlearned = copy.deepcopy(sc.backdoored)
    edit_layers(unlearned, unseen.x, sc.trigger, mu=1.0)
    with torch.no_grad():
        unlearned.fc2.bias[sc.target] -= 10.0
    x_n, x_t = unseen.x[unseen.y != sc.target], unseen.x[unseen.y == sc.target]
    rise = {}
    for hold in ("lower", "cleaned"):
        repaired, info = repair(sc.backdoored, copy.deepcopy(unlearned), unseen, sc.trigger, sc.target, hold=hold)
        assert info["repair_hold"] == hold
        with torch.no_grad():
            rise[hold] = {name: float((repaired(xs)[:, sc.target] - unlearned(xs)[:, sc.target]).mean())
                          for name, xs in (("target", x_t), ("triggered", apply_trigger(sc.trigger, x_n)))}
    assert rise["lower"]["target"] > 8.0 and rise["cleaned"]["target"] > 8.0  # the lowered score is lifted back
    assert rise["lower"]["triggered"] < 0.3 * rise["lower"]["target"]
    assert rise["cleaned"]["triggered"] > 0.8 * rise["cleaned"]["target"]  # what the lower value prevents


def test_the_repair_holds_every_trigger_it_is_given(sc):
    """``also_hold``: a second trigger's images are held at the lower value like the first's; not given, they rise
    with the target class (what ``repair_hold_kinds="firing"`` is for: the recovered kinds that
    reach the target besides the one the unlearning used)."""
    unseen = sc.defender(50)
    unlearned = copy.deepcopy(sc.backdoored)
    edit_layers(unlearned, unseen.x, sc.trigger, mu=1.0)
    with torch.no_grad():
        unlearned.fc2.bias[sc.target] -= 10.0
    pattern = torch.rand(unseen.x.shape[1:], generator=torch.Generator().manual_seed(0))

    def blend(x):
        return 0.7 * x + 0.3 * pattern

    x_n = apply_trigger(blend, unseen.x[unseen.y != sc.target])
    rise = {}
    for also in ([], [blend]):
        repaired, info = repair(sc.backdoored, copy.deepcopy(unlearned), unseen, sc.trigger, sc.target,
                                also_hold=also)
        assert info["repair_held_triggers"] == 1 + len(also)
        assert info["keys"] == 9 * len(unseen) + 4 * 9 * int((unseen.y != sc.target).sum()) * (1 + len(also))
        with torch.no_grad():
            rise[len(also)] = float((repaired(x_n)[:, sc.target] - unlearned(x_n)[:, sc.target]).mean())
    assert rise[0] > 3.0  # not held: half of the 10 the target class lost comes back on the blended images too
    assert rise[1] < 0.3 * rise[0]


def test_baerase_hands_the_repair_its_other_firing_kinds(sc, monkeypatch):
    """``baerase+repair`` with ``repair_hold_kinds="firing"`` holds BAERASE's ``also_fires`` (the recovered kinds
    that reach the target besides the one it unlearned); the default holds the used trigger alone."""
    import unlearnlib.defenses.compose_repair as module

    seen = []
    real = module.repair

    def spy(*args, also_hold=(), **kwargs):
        seen.append(len(also_hold))
        return real(*args, also_hold=also_hold, **kwargs)

    monkeypatch.setattr(module, "repair", spy)
    runs = {k: run_defense(sc, "baerase+repair", 60, progress=False, repair_hold_kinds=k, **CHEAP["baerase"])
            for k in ("used", "firing")}
    rates = runs["used"].record["info"]["kind_rates"]
    best = max(rates, key=rates.get)
    firing = sum(1 for k, r in rates.items() if k != best and r >= KEEP_RATE)
    assert seen == [0, firing]
    assert [r.record["info"]["repair_held_triggers"] for r in runs.values()] == [1, 1 + firing]
    assert get_defense("baerase+repair").hold_kinds == "firing"  # the default [ours] (repair_step's docstring)


def test_a_hidden_repair_layer_is_solved_whole(sc):
    unseen = sc.defender(50)
    unlearned = copy.deepcopy(sc.backdoored)
    edit_layers(unlearned, unseen.x, sc.trigger, mu=1.0)
    repaired, info = repair(sc.backdoored, copy.deepcopy(unlearned), unseen, sc.trigger, sc.target, layers="fc1")
    changed = (repaired.fc1.weight != unlearned.fc1.weight).any(1)
    assert bool(changed.all()) and torch.equal(repaired.fc2.weight, unlearned.fc2.weight)
    assert info["repair_layers"] == ["fc1"] and info["repair_rows"] == "all"


def test_repair_needs_target_samples_and_an_output_layer(sc):
    unseen = sc.defender(50)
    no_target = unseen.index((unseen.y != sc.target).nonzero().flatten())
    with pytest.raises(ValueError, match="target class 0"):
        repair(sc.backdoored, copy.deepcopy(sc.backdoored), no_target, sc.trigger, sc.target)
    with pytest.raises(ValueError, match="layer='conv2' is a Conv2d"):
        output_layer(sc.backdoored, 10, "conv2")
    with pytest.raises(ValueError, match="no Linear layer with 7 outputs"):
        output_layer(sc.backdoored, 7)


def test_bench_records_the_unlearned_stage(tmp_path):
    from unlearnlib.evaluation import grid as bench

    df = bench.run_grid("quick", ["badnets"], ["agme-bdk+repair", "agme-bdk"], [0], tmp_path, progress=False,
                        strict=True)
    rep = df[df["defense"] == "agme-bdk+repair"].iloc[0]
    plain = df[df["defense"] == "agme-bdk"].iloc[0]
    assert {"target_acc_unlearned", "asr_unlearned", "acc_unlearned"} <= set(df.columns)
    assert rep["target_acc_unlearned"] == pytest.approx(plain["target_acc"])  # the same unlearning, then repair
    assert rep["asr"] <= rep["asr_unlearned"] + 0.02
    assert df[df["defense"] == "agme-bdk"]["target_acc_unlearned"].isna().all()
    assert "agme-bdk" in bench.default_defenses() and not any("+" in d for d in bench.default_defenses())


def test_a_composition_reuses_its_inner_defense_run_within_a_memo(sc, monkeypatch):
    """``nc-unlearn+repair`` starts with exactly the ``nc-unlearn`` run of the same cell: within one memo that run is
    computed once, its seconds credited to the composition, and each caller gets its own copy of the model."""
    from unlearnlib.core.memo import RecoveryMemo
    from unlearnlib.defenses.nc_unlearn import NCUnlearn

    calls: list[int] = []
    real = NCUnlearn.run
    monkeypatch.setattr(NCUnlearn, "run", lambda self, *a, **kw: calls.append(1) or real(self, *a, **kw))
    memo = RecoveryMemo()
    plain = run_defense(sc, "nc-unlearn", shared=memo, **CHEAP["nc-unlearn"])
    composed = run_defense(sc, "nc-unlearn+repair", shared=memo, **CHEAP["nc-unlearn"])
    assert len(calls) == 1 and memo.credited > 0.0
    assert plain.record["info"]["run_reused"] is False and composed.record["info"]["run_reused"] is True
    assert composed.record["unlearned"] == plain.record["after"]
    assert composed.record["defense_seconds"] >= plain.record["defense_seconds"]
    other = run_defense(sc, "nc-unlearn", shared=memo, **{**CHEAP["nc-unlearn"], "epochs": 1})  # other settings
    assert len(calls) == 2 and other.record["info"]["run_reused"] is False
    again = run_defense(sc, "nc-unlearn", shared=memo, **CHEAP["nc-unlearn"])  # a copy, not the first run's model
    assert again.model is not plain.model and again.record["after"] == plain.record["after"]
    run_defense(sc, "agme-bdk", shared=memo)  # given the trigger: never shared
    assert not any(k.startswith("result:") and "agme" in k for k in memo.results)
    unshared = run_defense(sc, "nc-unlearn", **CHEAP["nc-unlearn"])  # outside a memo: computed, same numbers
    assert len(calls) == 3 and unshared.record["after"] == plain.record["after"]


def test_every_shareable_defense_is_keyed_by_plain_settings():
    """A blind run is reused when its settings read equal (``defenses.base.settings``), so every setting must be a
    plain value: an object whose text hides its state could make two different runs look the same."""
    import json

    from unlearnlib.defenses.base import settings

    def plain(o):
        if isinstance(o, torch.device):
            return str(o)
        raise TypeError(f"not a plain setting: {o!r}")

    for name in DEFENSES.names():
        d = get_defense(name)
        if d.shareable:
            for key, value in settings(d):
                json.dumps({f"{name}.{key}": value}, default=plain)  # raises on anything else
        else:
            assert name.endswith("+repair")  # a composition: its inner defense's run is shared


def test_a_memo_keeps_a_bounded_number_of_runs():
    from unlearnlib.core import memo as shared

    memo = shared.RecoveryMemo()
    with shared.sharing(memo):
        for i in range(shared.RESULTS_KEPT + 3):
            shared.shared_result(("k", i), lambda i=i: i, lambda r, reused: r)
        assert shared.shared_result(("k", 0), lambda: "computed", lambda r, reused: r) == "computed"  # dropped
        assert shared.shared_result(("k", shared.RESULTS_KEPT + 2), lambda: "no", lambda r, reused: (r, reused)) == (
            shared.RESULTS_KEPT + 2, True)
    assert len(memo.result_keys) == shared.RESULTS_KEPT
