"""The reference model of the target search (record 0018): same architecture, fresh weights trained on the
defender's images; an outlier that also fires on it is set aside as a natural trigger."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from unlearnlib.data import Data
from unlearnlib.recovery import target_search as ts
from unlearnlib.recovery.reference import reference_model


def tiny_model() -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(nn.Conv2d(1, 4, 3, padding=1), nn.BatchNorm2d(4), nn.ReLU(), nn.AdaptiveAvgPool2d(2),
                         nn.Flatten(), nn.Linear(16, 3)).eval()


def tiny_data(n: int = 12) -> Data:
    g = torch.Generator().manual_seed(1)
    return Data(torch.rand(n, 1, 8, 8, generator=g), torch.arange(n) % 3)


def test_reference_model_is_a_fresh_copy_trained_on_the_data():
    model, data = tiny_model(), tiny_data()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    torch.manual_seed(123)
    state = torch.random.get_rng_state()
    ref = reference_model(model, data, epochs=2, seed=3)
    assert torch.equal(torch.random.get_rng_state(), state)  # the caller's RNG is left alone
    assert all(torch.equal(v, model.state_dict()[k]) for k, v in before.items())  # the suspect is untouched
    assert type(ref) is type(model) and not torch.equal(ref[0].weight, model[0].weight)
    assert not ref.training and int(ref[1].num_batches_tracked) > 0  # trained, BatchNorm statistics its own
    again = reference_model(model, data, epochs=2, seed=3)
    assert all(torch.equal(a, b) for a, b in zip(ref.state_dict().values(), again.state_dict().values()))


@pytest.mark.parametrize("kwargs, param", [({"epochs": 0}, "epochs")])
def test_reference_model_names_bad_arguments(kwargs, param):
    with pytest.raises(ValueError, match=f"^{param} must be"):
        reference_model(tiny_model(), tiny_data(), **kwargs)
    with pytest.raises(ValueError, match="^data must hold at least 2"):
        reference_model(tiny_model(), tiny_data(1))


def test_an_outlier_that_fires_on_the_reference_is_set_aside(monkeypatch):
    """The patch search's outlier (class 2) fires on the reference too: set aside, and the blend's class 0, which
    does not, is named (the control flow, with the generators faked)."""
    suspect, ref = tiny_model(), tiny_model()
    suspect_scores = {3: [0.0, 0.0, 0.9], None: [0.8, 0.0, 0.0]}
    ref_scores = {3: [0.0, 0.0, 0.7], None: [0.1, 0.0, 0.0]}

    def fake_train(model, x, jobs, **kw):
        return [(("trig", j.patch_size, j.target, model is ref), {"hinge": [0.0]}) for j in jobs]

    def fake_rates(model, triggers, heldout, targets, draws=1):
        return [(ref_scores if t[3] else suspect_scores)[t[1]][t[2]] for t in triggers]

    monkeypatch.setattr(ts, "train_generators", fake_train)
    monkeypatch.setattr(ts, "proxy_rates", fake_rates)
    data = tiny_data()
    res = ts.search_target(suspect, data, data, 3, kinds=("patch", "blend"), patch_sizes=(3,), reference=ref,
                           progress=False)
    assert (res.target, res.kind, res.outlier) == (0, "blend", True)
    assert res.natural == [{"variant": "patch 3", "class": 2, "score": 0.9, "reference_score": 0.7}]
    assert res.info()["natural"] == res.natural and res.info()["all_scores"]["patch 3"] == [0.0, 0.0, 0.9]
    plain = ts.search_target(suspect, data, data, 3, kinds=("patch", "blend"), patch_sizes=(3,), progress=False)
    assert (plain.target, plain.kind, plain.natural) == (2, "patch", [])
