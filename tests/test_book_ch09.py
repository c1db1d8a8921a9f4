"""Chapter 9 ("Is it really gone?"): the retuning attack, clean models and the detector back what its prose says."""

from pathlib import Path

import pandas as pd

from unlearnlib import Retuning, load_evidence, rule, summarise_reactivation

ROOT = Path(__file__).resolve().parents[1]


def key(name: str) -> str:
    return name.replace("+", "_with_").replace("-", "_")


def test_ch09_protocol_and_live_run(glue):
    g, p = glue("09_is_it_really_gone"), Retuning()
    assert (g["ch09_images"], g["ch09_poisoned"], g["ch09_lr"], g["ch09_batch"]) == (p.images, p.poisoned, p.lr,
                                                                                        p.batch_size)
    assert g["ch09_steps"] == p.epochs * p.steps_per_epoch
    assert g["ch09_backdoored_retuned"] >= 90.0 and g["ch09_clean_retuned"] < 50.0  # the two references apart
    for d in ("agme_bdk", "agme"):  # removed right after the defense, back after retuning
        assert g[f"ch09_{d}_after"] <= 2.0
        assert abs(g[f"ch09_{d}_gap"] - (g[f"ch09_{d}_retuned"] - g["ch09_clean_retuned"])) <= 0.15
    # "Fine-tuning and the path-aware step leave the retuned asr where the defense left it ... extrapolation moves
    # it ... as hard to teach again as a clean one ... costs clean accuracy"
    for step in ("ft", "pam"):
        assert abs(g[f"ch09_deeper_{step}_retuned"] - g["ch09_deeper_base_retuned"]) <= 10.0, step
    assert g["ch09_deeper_ext_retuned"] <= g["ch09_clean_retuned"]
    assert g["ch09_deeper_ext_acc"] < g["ch09_backdoored_acc"] and g["ch09_deeper_base_asr"] <= 2.0


def test_ch09_every_defense_is_superficial_on_the_stored_runs(glue):
    g = glue("09_is_it_really_gone")
    tuning, _ = load_evidence(ROOT / "results" / "reactivation-tuning")
    held_out, prov = load_evidence(ROOT / "results" / "reactivation-grid")
    assert g["ch09_tuning_cells"] == 15 and g["ch09_grid_cells"] == prov["cells"]
    s = summarise_reactivation(rule.judged(pd.concat([tuning, held_out]))).set_index("defense")
    for name, r in s.iterrows():  # a defense that removed no backdoor has no gap: a dash
        assert g[f"ch09_{key(name)}_gap_median"] == (round(100 * r["gap_median"], 1) if r["removed"] else "—")
        assert g[f"ch09_{key(name)}_removed"] <= g[f"ch09_{key(name)}_planted"]
    # "Every defense that removed a backdoor left it easier to bring back than a clean model learns it": the lowest
    # median gap is well above zero (a tenth of the test images)
    assert g["ch09_lowest_gap"] >= 10.0 and g["ch09_lowest_gap"] == round(100 * s["gap_median"].min(), 1)
    # "The repair step does not close the gap either": after every +repair the median gap stays well above zero
    for inner in ("agme-bdk", "agme", "baerase", "nc-unlearn"):
        assert s.loc[f"{inner}+repair", "gap_median"] >= 0.10, inner


def test_ch09_reactivation_claims(glue):
    g = glue("09_is_it_really_gone")
    # "The least superficial here, ... fire the trigger on ...% ..., where clean models given the same images reach"
    low = key(g["ch09_lowest_gap_defense"])
    assert g["ch09_lowest_retuned_median"] == g[f"ch09_{low}_retuned_median"]
    assert g["ch09_lowest_clean_retuned_median"] == g[f"ch09_{low}_clean_retuned_median"]
    assert g["ch09_lowest_retuned_median"] > g["ch09_lowest_clean_retuned_median"] + 20.0
    assert g["ch09_highest_gap"] >= g["ch09_lowest_gap"]


def test_ch09_clean_models_detection_and_the_gate(glue):
    g = glue("09_is_it_really_gone")
    assert g["ch09_clean_models"] == 3 + g["ch09_clean_grid_cells"]
    for d in ("agme", "nc_unlearn"):  # "defend leaves only ... of them as they were"
        assert abs(g[f"ch09_clean_{d}_unchanged"] + g[f"ch09_clean_{d}_flagged"] - 100.0) <= 0.15
    # "flagged every clean MLP and small BatchNorm network, no CNN or LeNet-5"
    assert g["ch09_flagged_search_mlp"] == g["ch09_flagged_search_small_bn"] == 100.0
    assert g["ch09_flagged_search_cnn"] == g["ch09_flagged_search_lenet5"] == 0.0
    assert g["ch09_fpr_target_search_all"] == g["ch09_clean_agme_flagged"]
    # "Where a blind defense acts on a clean model it costs it ... the edit with backdoor knowledge ... nothing"
    assert g["ch09_clean_nc_unlearn_acc_drop_median"] > g["ch09_clean_agme_acc_drop_median"] > 0.0
    assert g["ch09_clean_agme_bdk_acc_drop_median"] <= 0.1
    # "The target search is the better detector ... Neural Cleanse's ... barely beats a coin"
    assert g["ch09_auc_target_search_all_low"] > g["ch09_auc_neural_cleanse_all_high"]
    assert g["ch09_auc_neural_cleanse_all_low"] < 0.5 < g["ch09_auc_target_search_all_low"]
    # "For every blind defense the rate with the gate lies inside the interval of the rate without it"
    for d in ("agme", "agme_repair", "agme_with_repair", "baerase", "baerase_with_repair", "nc_unlearn",
              "nc_unlearn_with_repair"):
        assert g[f"ch09_gate_{d}_low"] <= g[f"ch09_gate_{d}_gated"] <= g[f"ch09_gate_{d}_high"], d
