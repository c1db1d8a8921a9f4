"""Chapters 2 and 3 (BAERASE): the glued numbers against the issue's acceptance bounds."""

from __future__ import annotations

from unlearnlib.recovery.target_search import MAX_WARP, PATCH_SIZES, SEARCH_LR, SEARCH_STEPS, WARP_GRID


def test_ch02_target_found_and_triggers_transfer(glue):
    g = glue("02_trigger_recovery")
    assert g["ch02_found_target"] == g["ch02_true_target"]
    assert g["ch02_anomaly"] > 2.0
    assert g["ch02_unseen"] <= 175
    assert g["ch02_patch_sizes"] == ", then ".join(f"{k}×{k}" for k in PATCH_SIZES)  # the prose names the search's
    assert (g["ch02_search_steps"], g["ch02_search_lr"]) == (SEARCH_STEPS, SEARCH_LR)  # the budget the prose names
    assert g["ch02_transfer_backdoored"] >= 50.0 > g["ch02_transfer_clean"] + 40.0


def test_ch02_a_recovered_warp_carries_the_backdoor(glue):
    g = glue("02_trigger_recovery")
    assert (g["ch02_warp_grid"], g["ch02_max_warp"]) == (WARP_GRID, MAX_WARP)  # the generator the prose describes
    assert g["ch02_warp_backdoored"] >= 50.0 > g["ch02_warp_clean"] + 40.0
    assert -1.0 <= g["ch02_warp_cosine"] <= 1.0
    close = g["ch02_warp_cosine"] > 0.5
    assert g["ch02_warp_verdict"] == ("close to the attacker's" if close else "not the attacker's")


def test_ch03_target_found_and_asr_lowered(glue):
    g = glue("03_baerase_unlearning")
    assert g["ch03_target_found"] == 1
    assert g["ch03_asr_after"] <= 0.5 * g["ch03_asr_before"]
    assert g["ch03_recovery_seconds"] > 0 and g["ch03_unlearning_seconds"] > 0


def test_ch03_issue_bounds(glue):
    g = glue("03_baerase_unlearning")
    assert g["ch03_asr_before"] >= 90.0
    assert g["ch03_asr_after"] <= 2.0
    assert g["ch03_acc_drop"] <= 1.5
    assert g["ch03_unbounded_acc"] < g["ch03_acc_after"]  # the failure mode the prose describes
