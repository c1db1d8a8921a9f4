"""Glued numbers of chapters 04-06 against the issue's bounds (percent)."""

from __future__ import annotations

from unlearnlib.core.registry import DEFENSES
from unlearnlib.defenses.base import constructor_defaults


def test_ch04_bdk_edit(glue):
    g = glue("04_model_editing")
    assert g["ch04_asr_before"] >= 90
    assert g["ch04_asr_after"] <= 1.5
    assert g["ch04_acc_drop"] <= 0.5
    assert g["ch04_unseen"] == 50 and g["ch04_layers"] == g["ch04_blended_layers"] == "fc1"  # the prose
    assert g["ch04_keys_per_image"] == 25  # every shift of up to two pixels (unlearnlib.ml.edit.DENSE_SHIFTS)
    bdk = constructor_defaults(DEFENSES.get("agme-bdk"))
    assert (g["ch04_mu"], g["ch04_lam"]) == (bdk["mu"], bdk["lam"])  # the prose's "(4) mu = ..., lambda = ..."
    assert g["ch04_blended_asr_after"] <= 1.5
    assert g["ch04_blended_acc_drop"] <= 0.5


def test_ch05_neural_cleanse_finds_the_target(glue):
    g = glue("05_editing_without_the_trigger")
    assert g["ch05_nc_found"] == 1 and g["ch05_nc_target"] == g["ch05_true_target"]
    assert g["ch05_asr_after"] <= 3.0


def test_ch06_repair(glue):
    g = glue("06_repair")
    assert g["ch06_asr_repair"] <= 3.0
    assert g["ch06_acc_before"] - g["ch06_acc_repair"] <= 1.0
    assert abs(g["ch06_target_acc_repair"] - g["ch06_target_acc_before"]) <= 2.0
    assert g["ch06_target_acc_before"] - g["ch06_target_acc_edit"] <= 3.0  # "the edit barely touches the target"
    assert g["ch06_keep_weight"] == constructor_defaults(DEFENSES.get("agme-repair"))["keep_weight"]  # the prose's


def test_ch06_repair_after_gradient_unlearning(glue):
    """The repair step gives back what unlearning took from the target class, and never the backdoor."""
    g = glue("06_repair")
    for d in ("nc_unlearn", "baerase"):
        unlearned, repaired = g[f"ch06_{d}_target_acc_unlearned"], g[f"ch06_{d}_target_acc_repaired"]
        assert unlearned <= g["ch06_target_acc_before"] - 3.0  # the prose: unlearning takes much more
        assert repaired >= unlearned + 3.0 and repaired >= g["ch06_target_acc_before"] - 3.0
        assert g[f"ch06_{d}_asr_repaired"] <= 2.0 and g[f"ch06_{d}_acc_repaired"] >= g["ch06_acc_before"] - 1.5
    assert g["ch06_nc_unlearn_unseen"] == g["ch06_baerase_unseen"] == 175  # the prose names one count for both


def test_ch05_blended_needs_a_blend_shaped_recovery(glue):
    g = glue("05_editing_without_the_trigger")
    assert g["ch05_blended_asr_before"] >= 90
    assert g["ch05_blended_baerase_asr"] <= 3.0
    assert g["ch05_blended_acc_before"] - g["ch05_blended_baerase_acc"] <= 1.0
    assert g["ch05_blended_nc_asr"] > g["ch05_blended_baerase_asr"]  # the prose says Neural Cleanse's patch fails
    from unlearnlib.recovery.target_search import KEEP_RATE

    assert g["ch05_keep_rate"] == round(100 * KEEP_RATE)  # the prose's "on at least N% of the held-out images"
    assert "blend" in g["ch05_blended_kind"].split("+")  # a blend backdoor: the edit's trigger holds a blend


def test_ch05_where_trigger_recovery_fails(glue):
    """The section's numbers are computed; the known-trigger edit removes TrojanNN."""
    g = glue("05_editing_without_the_trigger")
    for a in ("trojannn", "wanet"):
        assert g[f"ch05_{a}_nc_detected"] in (0, 1) and 0 <= g[f"ch05_{a}_nc_target"] <= 9
        assert g[f"ch05_{a}_gen_kind"] in ("patch", "blend", "warp")
        assert g[f"ch05_left_{a}_none"] >= 90.0  # the backdoors the section removes are planted
    assert g["ch05_left_trojannn_agme_bdk"] <= 2.0 and g["ch05_left_wanet_agme_bdk"] <= 2.0
    # the prose: the first default left WaNet behind because its cascade stopped at conv2 (an in-sample check)
    assert g["ch05_wanet_first_asr"] > 2.0 and g["ch05_wanet_first_layers"] == "conv2"
    assert 90 <= g["ch05_wanet_first_agreement"] <= 100


def test_ch06_grid_cell_backs_the_prose(glue):
    """Chapter 6 shows the target-class loss on a robustness-grid cell, and the repair giving it back."""
    g = glue("06_repair")
    assert g["ch06_cell"] == "g0c054" and g["ch06_cell_unseen"] == 50
    assert g["ch06_cell_asr_before"] >= 90.0  # a planted backdoor
    # "brought the asr down": <= 2% on the AMD machines this was first run on, 3-4% on the Intel ones (the prose
    # says the numbers move with the machine; the repair's asr below is held to the grid's bound on every one)
    assert g["ch06_cell_asr_unlearned"] <= 10.0
    assert g["ch06_cell_target_acc_unlearned"] < g["ch06_cell_target_acc_before"]  # "took the target class"
    assert g["ch06_cell_target_acc_repaired"] > g["ch06_cell_target_acc_unlearned"]  # "gave it back"
    assert g["ch06_cell_target_acc_repaired"] >= g["ch06_cell_target_acc_before"] - 3.0  # within the grid's bound
    assert g["ch06_cell_asr_repaired"] <= 2.0
    assert g["ch06_cell_acc_before"] - g["ch06_cell_acc_repaired"] <= 1.5


def test_ch06_baerase_cell_backs_the_prose(glue):
    """On a grid cell, BAERASE takes the target class, the repair gives it back without the backdoor,
    and the first version's hold (``repair_hold="cleaned"``) let part of the backdoor come back."""
    g = glue("06_repair")
    assert g["ch06_b_cell"] == "g0c000" and g["ch06_b_cell_unseen"] == 175
    assert g["ch06_b_cell_same_unlearned"] == 1  # "the same unlearned model repaired the way the first version did"
    assert "blended backdoor" in g["ch06_b_cell_what"]  # "part of the attacker's blend fires again"
    assert g["ch06_b_cell_asr_before"] >= 90.0
    assert g["ch06_b_cell_asr_unlearned"] <= 2.0  # "removed the backdoor"
    assert g["ch06_b_cell_target_acc_unlearned"] < g["ch06_b_cell_target_acc_before"] - 3.0  # "took the class"
    assert g["ch06_b_cell_target_acc_repaired"] >= g["ch06_b_cell_target_acc_before"] - 3.0  # "gave it back"
    assert g["ch06_b_cell_asr_repaired"] <= 2.0
    assert g["ch06_b_cell_asr_cleaned"] > 2.0  # "the asr climbs": past the grid's bound
    assert g["ch06_b_cell_acc_before"] - g["ch06_b_cell_acc_repaired"] <= 1.5
