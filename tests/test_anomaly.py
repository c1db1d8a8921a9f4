"""The one MAD anomaly index: signed, exact against both former formulas, and used by both recovery methods."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from unlearnlib.core.device import cpu_threads
from unlearnlib.data import Data
from unlearnlib.recovery.anomaly import MAD_CONSISTENCY, anomaly_index
from unlearnlib.recovery.neural_cleanse import neural_cleanse


def test_signed_index_of_a_high_and_a_low_outlier():
    a = anomaly_index([0.9, 0.0, 0.01, 0.0, 0.02])
    assert a.dtype == torch.float64 and a[0] > 2 and int(a.argmax()) == 0
    b = anomaly_index(torch.tensor([1.0, 10.0, 12.0, 8.0, 11.0, 9.0, 10.5]))
    assert b.dtype == torch.float32 and b[0] < -2 and (b[1:].abs() < 2).all()


def test_matches_the_former_target_search_formula_exactly():
    s = torch.tensor([0.1, 0.0, 0.0, 0.95, 0.0, 0.02, 0.0, 0.0, 0.01, 0.0], dtype=torch.float64)
    med = s.median()
    mad = (s - med).abs().median().clamp(min=0.01)  # all-zero scores: the floor decides
    assert anomaly_index(s.tolist(), 0.01).tolist() == ((s - med) / (1.4826 * mad)).tolist()


def test_absolute_value_matches_the_former_neural_cleanse_formula_exactly():
    norms = torch.rand(10, generator=torch.Generator().manual_seed(0)) * 100
    med = norms.median()
    mad = (norms - med).abs().median()
    assert torch.equal(anomaly_index(norms).abs(), (norms - med).abs() / (MAD_CONSISTENCY * mad.clamp_min(1e-12)))


def test_equal_values_do_not_divide_by_zero():
    assert torch.equal(anomaly_index([0.0, 0.0, 0.0], 0.01), torch.zeros(3, dtype=torch.float64))


@pytest.mark.parametrize("values, mad_floor, param", [([], 0.01, "values"), (torch.zeros(2, 2), 0.01, "values"),
                                                      ([1.0, 2.0], 0.0, "mad_floor"), ([1.0], -1, "mad_floor")])
def test_bad_input_names_the_parameter(values, mad_floor, param):
    with pytest.raises(ValueError, match=f"^{param} must be"):
        anomaly_index(values, mad_floor)


def test_neural_cleanse_reports_the_absolute_index():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Conv2d(1, 4, 3, padding=1), nn.ReLU(), nn.AdaptiveAvgPool2d(2), nn.Flatten(),
                          nn.Linear(16, 3)).eval()
    data = Data(torch.rand(12, 1, 8, 8, generator=torch.Generator().manual_seed(0)), torch.arange(12) % 3)
    with cpu_threads(1):
        res = neural_cleanse(model, data, 3, steps=3, device="cpu", progress=False)
    assert torch.equal(res.anomaly_index, anomaly_index(res.mask_norms).abs())
