"""tools/activation_target_probe.py (record 0016): the activation-space searches name the class a small change of
the output layer's input reaches, and the anomaly index is the pixel search's."""

from __future__ import annotations

import activation_target_probe as probe  # tools/activation_target_probe.py (on sys.path through conftest)
import numpy as np
import torch
from torch import nn


def _model() -> nn.Module:
    """Logits = features + bias: class 1's bias is 1 below class 0's, class 2's 4 below (features in 0-3)."""
    lin = nn.Linear(3, 3)
    with torch.no_grad():
        lin.weight.copy_(torch.eye(3))
        lin.bias.copy_(torch.tensor([2.0, 1.0, -2.0]))
    return nn.Sequential(nn.Flatten(), lin).eval()


def test_the_nearest_class_is_named():
    x = torch.rand(40, 1, 1, 3) * 3
    shifts = probe.shift_sizes(_model(), x, 3)
    assert np.isfinite(shifts).all() and shifts[1] < shifts[2]
    stim = probe.stimulation_sizes(_model(), x, 3)
    assert stim[1] <= stim[2]


def test_anomaly_index():
    c, index = probe.named(np.array([1.0, 5.0, 5.5, 4.5, 5.0, np.inf]))
    assert c == 0 and index > 3
    assert np.isnan(probe.named(np.array([2.0, 2.0, 2.0]))[1])  # no spread: no index


def test_edit_shift_sends_images_to_the_target():
    model = _model().requires_grad_(False)
    d, sent = probe.layer_shift(model, model[1], torch.rand(40, 1, 1, 3) * 3, 2, "l2")
    assert sent >= 0.9 and d[2] > 0
