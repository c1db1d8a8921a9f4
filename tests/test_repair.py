"""The repair step restores the target class without bringing the backdoor back."""

from __future__ import annotations

import copy

import pytest
import torch

from unlearnlib.defenses.agme_repair import repair_edit
from unlearnlib.experiment.scenario import make_scenario
from unlearnlib.ml.edit import edit_layers


def test_repair_restores_target_acc_and_keeps_asr_low():
    sc = make_scenario("quick", "badnets", 0, progress=False)
    unseen = sc.defender(50)
    # a deliberately target-like "recovered trigger": blend in the mean target-class image
    proto = unseen.of_class(sc.target).x.mean(0)
    mask = torch.maximum(sc.trigger.mask, (proto > 0.3).float() * 0.8)
    pattern = torch.maximum(sc.trigger.pattern, proto)
    from unlearnlib.ml.triggers import Trigger

    fake = Trigger(mask, pattern)
    edited = copy.deepcopy(sc.backdoored)
    edit_layers(edited, unseen.x, fake, mu=1.0)
    repaired, info = repair_edit(sc.backdoored, unseen, fake, sc.target, keep_weight=10.0)
    m_edit, m_rep = sc.metrics(edited), sc.metrics(repaired)
    assert m_rep["target_acc"] >= m_edit["target_acc"]
    assert m_rep["target_acc"] >= sc.before["target_acc"] - 0.1
    assert info["repair_seconds"] > 0


def test_repair_needs_target_samples_and_valid_weight():
    sc = make_scenario("quick", "badnets", 0, progress=False)
    unseen = sc.defender(50)
    no_target = unseen.index((unseen.y != sc.target).nonzero().flatten())
    with pytest.raises(ValueError, match="target"):
        repair_edit(sc.backdoored, no_target, sc.trigger, sc.target)
    with pytest.raises(ValueError, match="keep_weight"):
        repair_edit(sc.backdoored, unseen, sc.trigger, sc.target, keep_weight=-1)
