"""MESA generator, MINE, paste and the per-class target search: shapes, ranges, determinism, errors."""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn

from unlearnlib.core.device import cpu_threads
from unlearnlib.data import Data
from unlearnlib.ml.triggers import paste
from unlearnlib.recovery import target_search as ts
from unlearnlib.recovery.mesa import GeneratedTrigger, Mine, TriggerGenerator, train_generator
from unlearnlib.recovery.target_search import search_target


@pytest.fixture(autouse=True)
def one_thread():
    with cpu_threads(1):  # tiny ops: one thread avoids synchronisation overhead on a shared CPU
        yield


def tiny_model(seed: int = 0) -> nn.Module:
    torch.manual_seed(seed)
    return nn.Sequential(nn.Conv2d(1, 4, 3, padding=1), nn.ReLU(), nn.AdaptiveAvgPool2d(2), nn.Flatten(),
                         nn.Linear(16, 3)).eval()


def tiny_data(n: int = 30) -> Data:
    g = torch.Generator().manual_seed(0)
    return Data(torch.rand(n, 1, 12, 12, generator=g), torch.arange(n) % 3)


@pytest.mark.parametrize("patch_size", [3, None])
def test_generator_shapes_and_range(patch_size):
    g = TriggerGenerator((1, 12, 12), patch_size, hidden=32).eval()
    out = g(torch.rand(5, 64))
    assert out.shape == ((5, 1, 3, 3) if patch_size else (5, 1, 12, 12))
    assert out.min() >= 0 and out.max() <= 1
    if patch_size is None:
        assert 0 < float(g.blend_weight().detach()) <= g.max_blend


def test_generator_rejects_a_patch_larger_than_the_image():
    with pytest.raises(ValueError, match="patch_size"):
        TriggerGenerator((1, 12, 12), 13, hidden=8)


def test_mine_estimate_is_finite():
    mine = Mine(9, hidden=16)
    z = torch.rand(64, 64)
    mi, surrogate = mine(z, torch.rand(64, 9))
    assert torch.isfinite(mi) and torch.isfinite(surrogate)


def test_paste_replaces_exactly_the_window():
    x = torch.zeros(2, 1, 6, 6)
    out = paste(x, torch.ones(2, 1, 2, 2), torch.tensor([0, 4]), torch.tensor([1, 3]))
    assert out[0, 0, 0:2, 1:3].eq(1).all() and out[1, 0, 4:6, 3:5].eq(1).all()
    assert out.sum() == 8


def test_generated_trigger_is_deterministic_and_shape_preserving():
    g = TriggerGenerator((1, 12, 12), 3, hidden=16)
    t1, t2 = GeneratedTrigger(g, seed=3), GeneratedTrigger(g, seed=3)
    x = tiny_data().x
    assert torch.equal(t1.apply(x), t2.apply(x)) and t1.apply(x).shape == x.shape
    masks, patterns = t1.examples(4)
    assert masks.shape == (4, 1, 12, 12) and patterns.shape == (4, 1, 12, 12) and masks.sum() == 4 * 9


def test_train_generator_is_deterministic_under_seed():
    model, x = tiny_model(), tiny_data().x
    runs = []
    for global_seed in (1, 2):  # whatever the caller's global RNG holds
        torch.manual_seed(global_seed)
        runs.append(train_generator(model, x, 1, hidden=16, steps=3, batch_size=8, positions="adaptive", seed=5,
                                    progress=False))
    assert runs[0][1] == runs[1][1]
    assert torch.equal(runs[0][0].apply(x), runs[1][0].apply(x))
    g0, g1 = runs[0][0].generator, runs[1][0].generator
    assert all(torch.equal(a, b) for a, b in zip(g0.state_dict().values(), g1.state_dict().values()))
    assert all(p.requires_grad for p in model.parameters())  # frozen only while training


def test_train_generator_leaves_the_global_rng_alone():
    model, x = tiny_model(), tiny_data().x
    torch.manual_seed(123)
    before = torch.get_rng_state()
    train_generator(model, x, 1, hidden=16, steps=2, batch_size=8, seed=5, progress=False)
    assert torch.equal(torch.get_rng_state(), before)
    with pytest.raises(ValueError, match="patch_size"):  # a call failing inside the seeded region restores it too
        train_generator(model, x, 1, patch_size=13, hidden=16, steps=2, batch_size=8, progress=False)
    assert torch.equal(torch.get_rng_state(), before)


@pytest.mark.parametrize("kwargs, param", [({"alpha": -0.1}, "alpha"), ({"alpha": float("nan")}, "alpha"),
                                           ({"lr": 0.0}, "lr"), ({"noise_std": -1.0}, "noise_std"),
                                           ({"position_temperature": 0}, "position_temperature"),
                                           ({"mine_hidden": 0}, "mine_hidden")])
def test_bad_generator_arguments_name_the_parameter(kwargs, param):
    with pytest.raises(ValueError, match=f"^{param} must be"):
        train_generator(tiny_model(), tiny_data().x, 0, hidden=8, steps=1, batch_size=4, **kwargs)


@pytest.mark.parametrize("kwargs, param", [({"threshold": -1.0}, "threshold"), ({"threshold": math.inf}, "threshold"),
                                           ({"min_score": 1.5}, "min_score"), ({"mad_floor": 0.0}, "mad_floor"),
                                           ({"lr": 0.0}, "search_lr")])
def test_bad_search_arguments_name_the_parameter(kwargs, param):
    data = tiny_data()
    with pytest.raises(ValueError, match=f"^{param} must be"):
        search_target(tiny_model(), data, data, 3, kinds=("patch",), steps=1, batch_size=4, hidden=8,
                      progress=False, **kwargs)


@pytest.mark.parametrize("beta", [0.0, 1.0, 1.5])
def test_beta_outside_open_interval_raises(beta):
    with pytest.raises(ValueError, match="beta"):
        train_generator(tiny_model(), tiny_data().x, 0, beta=beta, hidden=8, steps=1, batch_size=4)


def test_target_search_returns_per_class_scores():
    data = tiny_data()
    res = search_target(tiny_model(), data, data, 3, kinds=("patch", "blend"), steps=2, batch_size=8, hidden=16,
                        progress=False)
    assert len(res.scores) == 3 and len(res.anomaly) == 3 and 0 <= res.target < 3
    assert res.target == max(range(3), key=lambda c: res.anomaly[c])  # the class with the largest anomaly index
    info = res.info()
    assert isinstance(info["scores"][0], float) and set(info["all_scores"]) <= {"patch 3", "patch 6", "blend"}


def test_patch_sizes_are_searched_in_order_until_an_outlier_and_the_final_patch_keeps_its_size(monkeypatch):
    """The defender does not know the trigger's size: 3x3 finds nothing here, 6x6 names class 2, the blend is never
    trained, and the final patch generator is 6x6 (the control flow, with the generators faked)."""

    trained: list[tuple[int | None, ...]] = []
    lrs: list[float] = []
    scores = {3: [0.0, 0.0, 0.0], 6: [0.0, 0.05, 0.9], None: [0.5, 0.0, 0.0]}

    def fake_train(model, x, jobs, **kw):
        trained.append(tuple(j.patch_size for j in jobs))
        lrs.append(kw["lr"])
        return [(("trig", j.patch_size, j.target), {"hinge": [0.0]}) for j in jobs]

    def fake_rates(model, triggers, heldout, targets, draws=1):
        return [scores[t[1]][t[2]] if len(set(targets)) > 1 else (0.9 if t[1] == 6 else 0.2) for t in triggers]

    monkeypatch.setattr(ts, "train_generators", fake_train)
    monkeypatch.setattr(ts, "proxy_rates", fake_rates)
    data = tiny_data()
    res = ts.search_target(tiny_model(), data, data, 3, patch_sizes=(3, 6), progress=False)
    assert (res.target, res.kind, res.patch_size, res.outlier) == (2, "patch", 6, True)
    assert trained == [(3, 3, 3), (6, 6, 6)] and list(res.info()["all_scores"]) == ["patch 3", "patch 6"]
    assert lrs == [ts.SEARCH_LR] * 2  # the search's own budget
    trained.clear()
    lrs.clear()
    rec = ts._recover(tiny_model(), data, data, 3, None, **{**RECOVER_KW, "patch_sizes": (3, 6)})
    assert (rec.target, rec.kind, rec.patch_size) == (2, "patch", 6)
    assert lrs == [RECOVER_KW["search_lr"]] * 2 + [RECOVER_KW["gen_lr"]]  # search at search_lr, finals at gen_lr
    assert trained[-1] == (6, None)  # the finals: a patch at the size the search decided on, and a blend
    assert rec.info()["trigger_patch_size"] == 6 and rec.info()["search_patch_size"] == 6
    trained.clear()
    given = ts._recover(tiny_model(), data, data, 3, 1, **{**RECOVER_KW, "patch_sizes": (3, 6)})
    assert trained == [(3, None)] and given.search is None  # target given: no search, the first size


RECOVER_KW = dict(kinds=("patch", "blend"), patch_sizes=(3,), hidden=8, betas=(0.5,), gen_alpha=0.1, gen_lr=1e-3,
                  gen_steps=1, gen_batch_size=4, search_steps=1, search_lr=5e-3, search_batch_size=4, max_blend=0.3,
                  max_warp=1.5,
                  threshold=2.0, position_stride=2, warm_start=True, gen_patience=5,
                  keep="best", keep_rate=ts.KEEP_RATE, seed=0, progress=False)


def test_keep_all_edits_with_every_kind_that_fires(monkeypatch):
    """``keep="all"``: every final kind whose held-out rate reaches ``keep_rate`` joins the recovered trigger (an
    ensemble), the best one alone otherwise; ``"best"`` keeps the higher rate only (the generators faked)."""
    from unlearnlib.recovery.mesa import TriggerEnsemble

    def fake_train(model, x, jobs, **kw):
        return [(GeneratedTrigger(TriggerGenerator((1, 12, 12), j.patch_size, hidden=8), seed=j.seed,
                                  target=j.target), {"hinge": [0.0]}) for j in jobs]

    monkeypatch.setattr(ts, "train_generators", fake_train)
    monkeypatch.setattr(ts, "proxy_rates", lambda model, triggers, heldout, targets, draws=1:
                        [0.3 if t.generator.patch_size else 0.9 for t in triggers])
    data = tiny_data()
    best = ts._recover(tiny_model(), data, data, 3, 1, **RECOVER_KW)
    assert best.kind == "blend" and best.patch_size is None and not isinstance(best.trigger, TriggerEnsemble)
    both = ts._recover(tiny_model(), data, data, 3, 1, **{**RECOVER_KW, "keep": "all"})
    assert both.kind == "patch+blend" and both.patch_size == 3 and isinstance(both.trigger, TriggerEnsemble)
    assert [m.generator.patch_size for m in both.trigger.members] == [3, None]
    assert both.kind_rates == {"patch": 0.3, "blend": 0.9}
    high = ts._recover(tiny_model(), data, data, 3, 1, **{**RECOVER_KW, "keep": "all", "keep_rate": 0.5})
    assert high.kind == "blend"  # the patch fires on too few held-out images
    two_betas = ts._recover(tiny_model(), data, data, 3, 1, **{**RECOVER_KW, "keep": "all", "betas": (0.5, 0.8)})
    assert [m.generator.patch_size for m in two_betas.trigger.members] == [3, None, 3, None]


@pytest.mark.parametrize("kwargs, param", [({"keep": "both"}, "keep"), ({"keep_rate": 1.5}, "keep_rate"),
                                           ({"gen_patience": 0}, "gen_patience")])
def test_bad_keep_names_the_parameter(kwargs, param):
    from unlearnlib.recovery.target_search import recover

    data = tiny_data()
    with pytest.raises(ValueError, match=f"^{param} must be"):
        recover(tiny_model(), data, data, 3, 1, progress=False, **kwargs)


def test_agme_rejects_an_unknown_keep_kinds():
    from unlearnlib.defenses import get_defense

    with pytest.raises(ValueError, match="^keep_kinds must be one of"):
        get_defense("agme", keep_kinds="both")


@pytest.mark.parametrize("sizes, message", [((), "non-empty tuple"), ((3, 3), "distinct"), ((0,), ">= 1"),
                                            ((3, 13), "13 is larger than the 12-pixel images")])
def test_bad_patch_sizes_name_the_parameter(sizes, message):
    data = tiny_data()
    with pytest.raises(ValueError, match=f"patch_sizes.*{message}"):
        search_target(tiny_model(), data, data, 3, patch_sizes=sizes, steps=1, batch_size=4, hidden=8,
                      progress=False)
