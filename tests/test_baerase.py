"""The BAERASE defense: input never modified, errors name the parameter, NaN raises, JSON info, end to end."""

from __future__ import annotations

import copy
import json
import math

import pytest
import torch
from torch import nn

from unlearnlib.core.device import cpu_threads
from unlearnlib.data import Data
from unlearnlib.defenses import get_defense
from unlearnlib.defenses.baerase import BAErase, DivergenceError
from unlearnlib.recovery.target_search import KEEP_RATE

TINY = dict(hidden=16, gen_steps=2, gen_batch_size=8, search_steps=2, search_batch_size=8, epochs=1,
            batch_size=8, device="cpu", progress=False)


@pytest.fixture(autouse=True)
def one_thread():
    with cpu_threads(1):
        yield


def tiny_model() -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(nn.Conv2d(1, 4, 3, padding=1), nn.ReLU(), nn.AdaptiveAvgPool2d(2), nn.Flatten(),
                         nn.Linear(16, 3)).eval()


def tiny_data(n: int = 30) -> Data:
    return Data(torch.rand(n, 1, 12, 12, generator=torch.Generator().manual_seed(0)), torch.arange(n) % 3)


def test_registered_and_input_model_untouched_and_info_is_json():
    model, data = tiny_model(), tiny_data()
    before = copy.deepcopy(model.state_dict())
    out = get_defense("baerase", **TINY)(model, data, num_classes=3)
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())
    info = json.loads(json.dumps(out.info))
    for key in ("target", "search_scores", "recovery_seconds", "unlearning_seconds", "proxy_asr"):
        assert key in info
    assert len(info["search_scores"]) == 3 and not out.model.training


def test_given_target_skips_the_search():
    out = BAErase(**TINY)(tiny_model(), tiny_data(), target=2, num_classes=3)
    assert out.info["target"] == 2 and "search_scores" not in out.info


@pytest.mark.parametrize("kwargs, param", [({"beta": 1.0}, "beta"), ({"beta": (0.5, 0.0)}, "beta"),
                                           ({"alpha": -1.0}, "alpha"), ({"lr": 0}, "lr"),
                                           ({"holdout": 1.0}, "holdout"), ({"kinds": ("star",)}, "kinds"),
                                           ({"threshold": -1.0}, "threshold"), ({"threshold": math.nan}, "threshold"),
                                           ({"threshold": "2"}, "threshold"), ({"gen_lr": 0.0}, "gen_lr"),
                                           ({"gen_alpha": math.inf}, "gen_alpha"), ({"kl_stop": True}, "kl_stop"),
                                           ({"ascent_bound": True}, "ascent_bound"),
                                           ({"optimizer": "rmsprop"}, "optimizer"),
                                           ({"keep_kinds": "both"}, "keep_kinds")])
def test_bad_hyperparameters_name_the_parameter(kwargs, param):
    with pytest.raises(ValueError, match=f"^{param} must be"):
        BAErase(**{**TINY, **kwargs})


@pytest.mark.parametrize("keep", ["best", "all"])
def test_keep_kinds_reaches_the_recovery(monkeypatch, keep):
    import unlearnlib.defenses.baerase as module

    seen = []
    real = module.recover

    def spy(*args, **kwargs):
        seen.append(kwargs["keep"])
        return real(*args, **kwargs)

    monkeypatch.setattr(module, "recover", spy)
    out = BAErase(**TINY, keep_kinds=keep)(tiny_model(), tiny_data(), target=2, num_classes=3)
    assert seen == [keep]
    rates = out.info["kind_rates"]
    best = max(rates, key=rates.get)
    kept = [k for k in rates if k == best or (keep == "all" and rates[k] >= KEEP_RATE)]
    assert out.info["trigger_kind"] == "+".join(kept)
    assert len(out.also_fires) == sum(1 for k in rates if k not in kept and rates[k] >= KEEP_RATE)  # for the repair
    assert BAErase().recover_kwargs["keep"] == "best"  # the default: the kind that fires most (not adopted: "all")


def test_split_is_the_shared_holdout_rule():
    data = tiny_data(40)
    train, heldout = BAErase(**{**TINY, "holdout": 0.25}, seed=3).split(data)
    ref_train, ref_heldout = data.holdout_split(0.25, 3)
    assert torch.equal(train.x, ref_train.x) and torch.equal(heldout.x, ref_heldout.x) and len(heldout) == 10
    with pytest.raises(ValueError, match="^defender has 2 samples"):
        BAErase(**{**TINY, "holdout": 0.75}).split(tiny_data(2))


def test_sweep_rejects_a_bad_fraction():
    from unlearnlib.defenses.baerase import sweep

    with pytest.raises(ValueError, match="^fraction must be"):
        sweep(tiny_model(), tiny_data(), tiny_data(), None, 0, [{"fraction": 1.5}], lambda m: {})


def test_patch_larger_than_image_raises():
    with pytest.raises(ValueError, match="patch_sizes=.3, 13.: 13 is larger than the 12-pixel images"):
        BAErase(**{**TINY, "patch_sizes": (3, 13)})(tiny_model(), tiny_data(), target=0, num_classes=3)


def test_bad_defender_sets_raise():
    d = BAErase(**TINY)
    single = Data(torch.rand(10, 1, 12, 12), torch.zeros(10, dtype=torch.long))
    with pytest.raises(ValueError, match="defender"):
        d(tiny_model(), single, num_classes=3)
    with pytest.raises(ValueError, match="defender"):
        d(tiny_model(), Data(torch.rand(0, 1, 12, 12), torch.zeros(0, dtype=torch.long)), num_classes=3)


def test_model_in_training_mode_raises():
    with pytest.raises(ValueError, match="model"):
        BAErase(**TINY)(tiny_model().train(), tiny_data(), num_classes=3)


def test_model_on_another_device_than_data_raises():
    d = BAErase(**TINY)
    with pytest.raises(ValueError, match="model"):
        d.run(tiny_model().to("meta"), tiny_data(), trigger=None, target=0, num_classes=3)


def test_nan_divergence_raises_and_leaves_the_input_untouched():
    from unlearnlib.defenses.baerase import unlearn
    from unlearnlib.recovery.mesa import GeneratedTrigger, TriggerGenerator

    model, data = tiny_model(), tiny_data()
    with torch.no_grad():
        model[4].bias[0] = float("nan")
    before = copy.deepcopy(model.state_dict())
    with pytest.raises(DivergenceError, match="diverged"):  # the whole defense: recovery meets the NaN first
        BAErase(**TINY)(model, data, target=0, num_classes=3)
    assert all(torch.equal(before[k], v) or before[k].isnan().any() for k, v in model.state_dict().items())
    trig = GeneratedTrigger(TriggerGenerator((1, 12, 12), 3, hidden=8))
    with pytest.raises(DivergenceError, match="lr"):  # and the unlearning stage alone
        unlearn(copy.deepcopy(model), data, data, trig, 0, epochs=1)


def test_adam_steps_stay_bounded_where_large_features_make_sgd_overshoot():
    """Why the unlearning uses Adam (module docstring): with inputs 1000x larger (a BatchNorm network's triggered
    features), SGD's steps scale with them while Adam's stay near ``lr`` per weight and step."""
    from unlearnlib.defenses.baerase import unlearn
    from unlearnlib.recovery.mesa import GeneratedTrigger, TriggerGenerator

    trig = GeneratedTrigger(TriggerGenerator((1, 12, 12), 3, hidden=8))
    data = tiny_data()
    big = Data(1000 * data.x, data.y)
    lr, batch_size, moved = 1e-3, 8, {}
    for opt in ("adam", "sgd"):
        model = tiny_model()
        try:
            unlearn(model, big, big, trig, 0, lr=lr, epochs=1, batch_size=batch_size, stop_live=0.0, optimizer=opt)
        except DivergenceError:
            moved[opt] = math.inf
            continue
        start = tiny_model().parameters()
        moved[opt] = max(float((p - p0).detach().abs().max()) for p, p0 in zip(model.parameters(), start))
    steps = math.ceil(len(big) / batch_size)
    assert moved["adam"] <= 2 * steps * lr  # Adam: about lr per step (its bias correction allows a little more)
    assert moved["sgd"] > 100 * moved["adam"]


def test_unbounded_huge_steps_diverge_with_a_clear_error():
    from unlearnlib.defenses.baerase import unlearn
    from unlearnlib.recovery.mesa import GeneratedTrigger, TriggerGenerator

    trig = GeneratedTrigger(TriggerGenerator((1, 12, 12), 3, hidden=8))
    with pytest.raises(DivergenceError, match="ascent_bound"):
        unlearn(tiny_model(), tiny_data(), tiny_data(), trig, 0, lr=1e30, ascent_bound=math.inf, stop_live=0.0,
                anchor="ce", epochs=5)


def test_end_to_end_lowers_asr_on_the_quick_scenario():
    from unlearnlib.experiment.runs import run_defense
    from unlearnlib.experiment.scenario import make_scenario

    sc = make_scenario("quick", "badnets", 0, progress=False)
    rec = run_defense(sc, "baerase", target=sc.target, progress=False, kinds=("patch",), gen_steps=30).record
    assert rec["info"]["target"] == sc.target
    assert rec["after"]["asr"] < 0.5 * rec["before"]["asr"]
