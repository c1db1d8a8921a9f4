"""Neural Cleanse: the contract fields (used by nc-unlearn), the MAD index, and the target on a cached scenario."""

from __future__ import annotations

import torch

from unlearnlib.experiment.scenario import make_scenario
from unlearnlib.ml.triggers import Trigger
from unlearnlib.recovery.anomaly import anomaly_index
from unlearnlib.recovery.neural_cleanse import flag_target, neural_cleanse


def test_anomaly_index_and_flag():
    norms = torch.tensor([1.0, 10.0, 12.0, 8.0, 11.0, 9.0, 10.5])
    idx = anomaly_index(norms).abs()  # Neural Cleanse's index is two-sided
    assert idx[0] > 2 and (idx[1:] < 2).all()
    assert flag_target(norms, idx, list(range(7))) == (0, True)
    flat = torch.tensor([10.0, 10.5, 9.5, 10.2])
    assert flag_target(flat, anomaly_index(flat).abs(), [0, 1, 2, 3])[1] is False


def test_contract_and_target_on_badnets():
    sc = make_scenario("quick", "badnets", 0, progress=False)
    res = neural_cleanse(sc.backdoored, sc.defender(50), 10, seed=0, progress=False)
    assert res.masks.shape == (10, 1, 28, 28) and res.patterns.shape == (10, 1, 28, 28)
    assert res.mask_norms.shape == (10,) and res.anomaly_index.shape == (10,)
    assert torch.equal(res.anomaly_index, anomaly_index(res.mask_norms).abs())
    assert isinstance(res.target, int) and isinstance(res.detected, bool)
    assert res.detected and res.target == sc.target
    trig = res.trigger(res.target)
    assert isinstance(trig, Trigger) and trig.apply(sc.split.test.x[:2]).shape == (2, 1, 28, 28)
