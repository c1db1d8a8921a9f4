"""MESA generator, MINE, paste and the per-class target search: shapes, ranges, determinism, errors."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from unlearnlib.data import Data
from unlearnlib.device import cpu_threads
from unlearnlib.recover.mesa import GeneratedTrigger, Mine, TriggerGenerator, paste, train_generator
from unlearnlib.recover.target_search import anomaly_index, search_target


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
    runs = [train_generator(model, x, 1, hidden=16, steps=3, batch_size=8, positions="adaptive", seed=5,
                            progress=False) for _ in range(2)]
    assert runs[0][1] == runs[1][1]
    assert torch.equal(runs[0][0].apply(x), runs[1][0].apply(x))
    assert all(p.requires_grad for p in model.parameters())  # frozen only while training


@pytest.mark.parametrize("beta", [0.0, 1.0, 1.5])
def test_beta_outside_open_interval_raises(beta):
    with pytest.raises(ValueError, match="beta"):
        train_generator(tiny_model(), tiny_data().x, 0, beta=beta, hidden=8, steps=1, batch_size=4)


def test_anomaly_index_flags_the_outlier():
    a = anomaly_index([0.9, 0.0, 0.01, 0.0, 0.02])
    assert max(range(5), key=a.__getitem__) == 0 and a[0] > 2


def test_target_search_returns_per_class_scores():
    data = tiny_data()
    res = search_target(tiny_model(), data, data, 3, kinds=("patch", "blend"), steps=2, batch_size=8, hidden=16,
                        progress=False)
    assert len(res.scores) == 3 and len(res.anomaly) == 3 and 0 <= res.target < 3
    assert all(0.0 <= s <= 1.0 for s in res.scores)
    info = res.info()
    assert isinstance(info["scores"][0], float) and set(info["all_scores"]) <= {"patch", "blend"}
