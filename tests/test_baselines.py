"""The baselines: fine-tuning, Neural Cleanse unlearning, fine-pruning (unit tests on the cached quick scenario)."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from unlearnlib.defenses import get_defense
from unlearnlib.defenses.fine_pruning import last_conv_layer
from unlearnlib.experiment.runs import run_defense
from unlearnlib.experiment.scenario import make_scenario
from unlearnlib.models.cnn import SmallCNN

FAST = {"finetune": {}, "fine-pruning": {}, "nc-unlearn": {"nc_steps": 40}}


@pytest.fixture(scope="module")
def scenario():
    return make_scenario("quick", "badnets", 0, progress=False)


def _state(model: nn.Module) -> dict[str, torch.Tensor]:
    return {k: v.detach().clone() for k, v in model.state_dict().items()}


@pytest.mark.parametrize("name", ["finetune", "fine-pruning"])
def test_baseline_returns_a_new_model_and_lowers_nothing_it_should_keep(scenario, name):
    before = _state(scenario.backdoored)
    run = run_defense(scenario, name, progress=False, **FAST[name])
    assert run.model is not scenario.backdoored
    assert all(torch.equal(before[k], v) for k, v in scenario.backdoored.state_dict().items())
    rec = run.record
    assert rec["unseen"] == 175 and rec["defense_seconds"] > 0 and rec["detected"] is None
    assert rec["after"]["acc"] > rec["before"]["acc"] - 0.03  # clean accuracy kept within ~2-3 points
    assert rec["after"]["asr"] <= rec["before"]["asr"]


def test_nc_unlearn_removes_badnets_with_a_known_target(scenario):
    before = _state(scenario.backdoored)
    run = run_defense(scenario, "nc-unlearn", target=scenario.target, progress=False, nc_steps=60)
    assert all(torch.equal(before[k], v) for k, v in scenario.backdoored.state_dict().items())
    info = run.record["info"]
    assert info["known_target"] and info["target_used"] == 0 and info["nc_classes"] == [0]
    assert run.record["detected"] is None  # told the target: it decides nothing
    assert run.record["after"]["asr"] < 0.5 * run.record["before"]["asr"]
    assert run.record["after"]["acc"] > run.record["before"]["acc"] - 0.05


def test_fine_pruning_prunes_and_keeps_pruned_channels_zero(scenario):
    run = run_defense(scenario, "fine-pruning", progress=False, ratio=0.25)
    info, conv = run.record["info"], run.model.conv2
    assert info["pruned"] == 8 and info["layer"] == "conv2" and info["val_samples"] == 52  # round(0.3 * 175)
    pruned = info["pruned_channels"]
    assert torch.all(conv.weight[pruned] == 0) and torch.all(conv.bias[pruned] == 0)
    assert not hasattr(conv, "weight_orig")  # the pruning reparametrisation was removed
    assert torch.all(scenario.backdoored.conv2.weight[pruned] != 0)


def test_last_conv_layer_falls_back_to_the_last_conv2d():
    plain = nn.Sequential(nn.Conv2d(1, 4, 3), nn.ReLU(), nn.Conv2d(4, 6, 3), nn.Flatten(), nn.LazyLinear(10))
    assert last_conv_layer(plain) == ("2", plain[2])
    assert last_conv_layer(SmallCNN())[0] == "conv2"
    with pytest.raises(ValueError, match="no nn.Conv2d"):
        last_conv_layer(nn.Sequential(nn.Flatten(), nn.Linear(784, 10)))


def test_finetune_is_deterministic(scenario):
    d = scenario.defender(40)
    m1 = get_defense("finetune", epochs=2, progress=False)(scenario.backdoored, d).model
    m2 = get_defense("finetune", epochs=2, progress=False)(scenario.backdoored, d).model
    assert all(torch.equal(a, b) for a, b in zip(m1.state_dict().values(), m2.state_dict().values()))


@pytest.mark.parametrize("name, kwargs, match", [
    ("finetune", {"epochs": 0}, "epochs must be an integer >= 1"),
    ("finetune", {"lr": -1.0}, "lr must be a finite number > 0"),
    ("finetune", {"optimizer": "rmsprop"}, "optimizer must be 'adam' or 'sgd'"),
    ("finetune", {"augment": "mixup"}, "augment must be one of"),
    ("fine-pruning", {"tolerance": 2.0}, "tolerance must be a number in"),
    ("fine-pruning", {"ratio": 1.0}, "ratio must be a number in"),
    ("fine-pruning", {"holdout": 0.0}, "holdout must be a number in"),
    ("nc-unlearn", {"fraction": 0.0}, "fraction must be a number in"),
    ("nc-unlearn", {"nc_steps": 0}, "nc_steps must be an integer >= 1"),
    ("nc-unlearn", {"nc_lam": -1}, "nc_lam must be a finite number >= 0"),
])
def test_bad_hyperparameters_name_the_parameter(name, kwargs, match):
    with pytest.raises(ValueError, match=match):
        get_defense(name, **kwargs)


@pytest.mark.parametrize("name", ["finetune", "fine-pruning", "nc-unlearn"])
def test_bad_call_arguments_name_the_parameter(scenario, name):
    d = get_defense(name, progress=False)
    with pytest.raises(ValueError, match="defender must be"):
        d(scenario.backdoored, scenario.defender(10).index(torch.tensor([], dtype=torch.long)))
    with pytest.raises(ValueError, match="target must be a class index"):
        d(scenario.backdoored, scenario.defender(20), target=10)
    with pytest.raises(TypeError, match="model must be a torch.nn.Module"):
        d("not a model", scenario.defender(20))
