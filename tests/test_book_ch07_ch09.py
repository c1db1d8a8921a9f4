"""Chapters 7 and 9: the comparison's glued numbers back what its prose says; the playground's static run works."""

import pytest


@pytest.mark.parametrize("attack", ["badnets", "blended"])
def test_ch07_grid_backs_the_prose(glue, attack):
    g = glue("07_comparison")
    k = f"ch07_{attack}"
    assert g[f"{k}_none_asr"] >= 95.0 and g[f"{k}_none_der"] == 50.0
    # the issues' bounds, one seed in the book
    assert g[f"{k}_baerase_asr"] <= 2.0 and g[f"{k}_none_acc"] - g[f"{k}_baerase_acc"] <= 1.5
    assert g[f"{k}_agme_bdk_asr"] <= 1.5 and g[f"{k}_none_acc"] - g[f"{k}_agme_bdk_acc"] <= 0.5
    assert g[f"{k}_agme_repair_asr"] <= 3.0 and g[f"{k}_none_acc"] - g[f"{k}_agme_repair_acc"] <= 1.0
    assert abs(g[f"{k}_none_target_acc"] - g[f"{k}_agme_repair_target_acc"]) <= 2.0
    assert g[f"{k}_agme_bdk_unseen"] <= 10 and g[f"{k}_baerase_unseen"] <= 175
    # "fine-tuning and fine-pruning leave the backdoor in place"; "Neural Cleanse unlearning ... brings the asr to"
    assert g[f"{k}_finetune_asr"] >= 50.0 and g[f"{k}_fine_pruning_asr"] >= 50.0
    assert g[f"{k}_nc_unlearn_asr"] <= 20.0
    # "the cheapest defense on the grid ... N x faster than BAERASE and M x faster than fine-tuning"
    assert g[f"ch07_speedup_baerase_{attack}"] >= 10 and g[f"ch07_speedup_finetune_{attack}"] > 1
    for d in ("baerase", "agme", "agme_repair", "finetune", "nc_unlearn", "fine_pruning"):
        assert g[f"{k}_agme_bdk_seconds"] < g[f"{k}_{d}_seconds"]


def test_ch09_static_run(glue):
    g = glue("09_playground")
    assert g["ch09_asr_before"] >= 95.0 and g["ch09_asr_after"] <= 2.0
    assert g["ch09_acc_before"] - g["ch09_acc_after"] <= 1.0 and g["ch09_unseen"] == 10


def test_ch07_scaling_backs_the_prose(glue):
    """"the edit of PreAct-ResNet18 took S s for LAYER (d, n keys, form), of which the linear solve was s s"."""
    g = glue("07_comparison")
    assert 0 < g["ch07_resnet_solve_seconds"] <= g["ch07_resnet_edit_seconds"]
    assert g["ch07_resnet_edit_layer"].startswith("layer4.1.conv2") and "d = 4608" in g["ch07_resnet_edit_layer"]
    assert "dual form" in g["ch07_resnet_edit_layer"]  # n < d: the n x n system, as the prose says
    assert "cores" in g["ch07_scaling_machine"] and g["ch07_scaling_unseen"] == 10
