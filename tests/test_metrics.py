import pytest
import torch
from torch import nn

from unlearnlib.attacks.badnets import BadNets
from unlearnlib.data import Data
from unlearnlib.ml.metrics import asr_by_position, der, evaluate, per_class_accuracy


class Lookup(nn.Module):
    """Predicts from pixel (0, 0): class = round(9 * value); a trigger setting pixel (0,0) forces a class."""

    def __init__(self):
        super().__init__()
        self.dummy = nn.Parameter(torch.zeros(1))

    def forward(self, x):
        cls = (x[:, 0, 0, 0] * 9).round().long()
        return nn.functional.one_hot(cls, 10).float() + 0 * self.dummy


def _data(labels, preds):
    x = torch.zeros(len(labels), 1, 4, 4)
    x[:, 0, 0, 0] = torch.tensor(preds, dtype=torch.float) / 9
    return Data(x, torch.tensor(labels))


def trigger_to(cls):
    return lambda x: torch.where(torch.arange(16).view(1, 1, 4, 4) == 0, torch.full_like(x, cls / 9), x)


def test_hand_computed_metrics():
    # labels 0 0 1 2 3 ; predictions 0 1 1 2 0 -> acc 3/5, target_acc (t=0) 1/2
    data = _data([0, 0, 1, 2, 3], [0, 1, 1, 2, 0])
    m = evaluate(Lookup(), data, trigger_to(0), target=0)
    assert m["acc"] == pytest.approx(0.6) and m["target_acc"] == pytest.approx(0.5)
    assert m["asr"] == 1.0 and m["ra"] == 0.0
    m2 = evaluate(Lookup(), data, trigger_to(2), target=0)  # trigger sends everything to 2: asr 0, ra 1/3
    assert m2["asr"] == 0.0 and m2["ra"] == pytest.approx(1 / 3)


def test_identity_trigger_gives_natural_error_rate():
    data = _data([0, 1, 2, 3], [0, 0, 2, 3])  # one non-target sample (label 1) predicted as target 0
    m = evaluate(Lookup(), data, lambda x: x, target=0)
    assert m["asr"] == pytest.approx(1 / 3) and m["ra"] == pytest.approx(2 / 3)


def test_per_class_accuracy():
    labels, preds = [0, 0, 1, 1, 2, 3, 4, 5, 6, 7, 8, 9], [0, 1, 1, 1, 2, 3, 4, 5, 6, 7, 8, 0]
    acc = per_class_accuracy(Lookup(), _data(labels, preds))
    assert acc[0] == 0.5 and acc[1] == 1.0 and acc[9] == 0.0


def test_der():
    assert der({"asr": 0.99, "acc": 0.96}, {"asr": 0.01, "acc": 0.95}) == pytest.approx((0.98 - 0.01 + 1) / 2)
    assert der({"asr": 0.5, "acc": 0.9}, {"asr": 0.6, "acc": 0.95}) == pytest.approx(0.5)  # no credit for worse


def test_evaluate_restores_training_mode_and_checks_target():
    model = Lookup().train()
    evaluate(model, _data([0, 1], [0, 1]), BadNets((1, 4, 4), size=1), target=0)
    assert model.training
    with pytest.raises(ValueError, match="target must be"):
        evaluate(model, _data([0, 1], [0, 1]), BadNets((1, 4, 4), size=1), target=5)


def test_asr_by_position_maps_where_a_patch_fires_and_where_the_ink_is():
    """Lookup reads pixel (0, 0): a patch of value 7/9 fires class 7 only when its window covers (0, 0)."""
    x = torch.zeros(3, 1, 6, 6)
    x[:, :, 4:, 4:] = 1.0  # "ink" in the bottom-right corner
    patch = torch.full((1, 2, 2), 7 / 9)
    asr, ink = asr_by_position(Lookup(), x, patch, 7, stride=1)
    assert asr.shape == ink.shape == (5, 5)
    expected = torch.zeros(5, 5)
    expected[0, 0] = 1.0
    assert torch.equal(asr, expected)
    assert ink[4, 4] == 1.0 and ink[3, 3] == 0.25 and ink[0, 0] == 0.0
    asr2, ink2 = asr_by_position(Lookup(), x, patch, 7, stride=2)  # probes rows and columns 0, 2, 4
    assert torch.equal(asr2, asr[::2, ::2]) and torch.equal(ink2, ink[::2, ::2])


@pytest.mark.parametrize("kwargs, match", [({"patch": torch.ones(1, 7, 7)}, "patch"),
                                           ({"patch": torch.ones(3, 2, 2)}, "patch"),
                                           ({"stride": 0}, "stride"), ({"target": 10}, "target")])
def test_asr_by_position_rejects_bad_input(kwargs, match):
    args = {"patch": torch.ones(1, 2, 2), "target": 1, "stride": 1, **kwargs}
    with pytest.raises(ValueError, match=match):
        asr_by_position(Lookup(), torch.zeros(2, 1, 6, 6), args["patch"], args["target"], stride=args["stride"])
