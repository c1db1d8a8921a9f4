"""The registered blind-edit defenses (agme, agme-repair): both trigger sources, flags, and the input model."""

import pytest
import torch

from unlearnlib.defenses import get_defense
from unlearnlib.experiment.scenario import make_scenario


@pytest.fixture(scope="module")
def sc():
    return make_scenario("quick", "badnets", 0, progress=False)


def _same(a, b):
    return all(torch.equal(x, y) for x, y in zip(a.state_dict().values(), b.state_dict().values()))


@pytest.mark.parametrize("name", ["agme", "agme-repair"])
def test_neural_cleanse_source_edits_and_leaves_the_input_alone(sc, name):
    import copy

    before = copy.deepcopy(sc.backdoored)
    out = get_defense(name, recover="nc", nc_steps=60, progress=False)(sc.backdoored, sc.defender(50))
    assert _same(sc.backdoored, before) and not _same(out.model, before)
    assert out.info["recover"] == "nc" and out.info["recovered_target"] == 0 and out.info["detected"] is True
    assert sc.metrics(out.model)["asr"] < 0.2
    if name == "agme-repair":
        assert out.info["repair_keys"] >= 1 and out.info["repair_seconds"] > 0


@pytest.mark.slow
def test_generator_source_reports_the_search_outcome(sc):
    out = get_defense("agme", progress=False)(sc.backdoored, sc.defender(50))
    assert out.info["recover"] == "baerase" and out.info["recovered_target"] == 0
    assert out.info["detected"] is True and out.info["trigger_kind"] == "patch"
    assert sc.metrics(out.model)["asr"] < 0.05


def test_bad_recover_value_names_the_parameter():
    with pytest.raises(ValueError, match="recover must be 'nc'"):
        get_defense("agme", recover="oracle")


@pytest.mark.parametrize("name, params, message", [
    ("agme-bdk", {"augment": "none"}, "^augment must be True or False"),
    ("agme-bdk", {"cascade_agreement": 1.5}, r"^cascade_agreement must be a number in \[0, 1\]"),
    ("agme-bdk", {"mu": float("inf")}, "^mu must be a finite number >= 0"),
    ("agme", {"nc_lam": -1}, "^nc_lam must be a finite number >= 0"),
])
def test_bad_editing_parameters_name_themselves(name, params, message):
    with pytest.raises(ValueError, match=message):
        get_defense(name, **params)


@pytest.mark.parametrize("keep_weight", [-1, float("nan"), "10"])
def test_bad_keep_weight_fails_at_construction(keep_weight):
    with pytest.raises(ValueError, match="^keep_weight must be a finite number >= 0"):
        get_defense("agme-repair", keep_weight=keep_weight)


def test_generator_source_holds_out_by_the_shared_rule(sc, monkeypatch):
    import unlearnlib.defenses.agme as agme

    seen = {}

    def fake_recover(model, train, heldout, *args, **kwargs):
        seen["train"], seen["heldout"] = train, heldout
        raise RuntimeError("stop after the split")

    monkeypatch.setattr(agme, "recover", fake_recover)
    defender = sc.defender(50)
    with pytest.raises(RuntimeError, match="stop after the split"):
        get_defense("agme", progress=False, seed=4)(sc.backdoored, defender)
    train, heldout = defender.holdout_split(0.2, 4)
    assert torch.equal(seen["train"].x.cpu(), train.x.cpu()) and torch.equal(seen["heldout"].x.cpu(), heldout.x.cpu())


def test_blind_edit_shifts_its_keys_with_the_generator_recovery_only():
    """[ours] augment=None: shifted keys with the generator's recovery, one key per image with Neural Cleanse's."""
    assert get_defense("agme").augment is True and get_defense("agme-repair").augment is True
    assert get_defense("agme", recover="nc").augment is False
    assert get_defense("agme", recover="nc", augment=True).augment is True
    assert get_defense("agme", augment=False).hyperparameters()["augment"] is False
