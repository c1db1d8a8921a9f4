"""Chapter 8 ("Does it hold?"): the glued numbers back what its prose says about the held-out cells."""

from unlearnlib.evaluation.grid import default_defenses

# the grid's defenses (every registered one but the compositions), as the chapter's glue names them
DEFENSES = tuple(d.replace("-", "_") for d in default_defenses() if d != "none")


def test_ch08_held_out_cells_back_the_prose(glue):
    g = glue("08_does_it_hold")
    n = g["ch08_cells"]
    assert 1 <= n < g["ch08_full_cells"] == 60  # the book runs the grid's first cells, the command the whole grid
    assert (g["ch08_asr_max"], g["ch08_acc_drop_max"], g["ch08_target_acc_drop_max"]) == (2.0, 1.5, 3.0)
    assert 0 <= g["ch08_planted"] <= n
    for d in DEFENSES:  # a success rate is a share of the n cells
        assert any(g[f"ch08_success_{d}"] == round(100 * k / n, 1) for k in range(n + 1)), d
        assert 0 <= g[f"ch08_failed_{d}"] <= n
    # "it removes most of the backdoor (the largest asr it leaves on these cells is X%)"
    assert g["ch08_asr_worst_agme_bdk"] <= 10.0
    # "the largest asr it leaves is X% (K cells over the asr bound) and the target class's largest drop Y points
    # (M cells over its bound)": the counts agree with the worst values
    assert (g["ch08_over_asr_agme_bdk"] > 0) == (g["ch08_asr_worst_agme_bdk"] > g["ch08_asr_max"])
    worst_target = g["ch08_target_drop_worst_agme_bdk"]
    assert (g["ch08_over_target_agme_bdk"] > 0) == (worst_target > g["ch08_target_acc_drop_max"])
    assert g["ch08_bdk_unseen"] == 50  # "from 50 samples"; the first default's 10 were one image per class
    # "BAERASE ended in an error on N of these cells" -- with SGD it diverged on the BatchNorm network's cells; with
    # Adam (chapter 3) no cell of the book's subset may end in an error
    assert g["ch08_failed_baerase"] == 0
    # "fine-tuning and fine-pruning leave the backdoor in place here as on the tuning setting"
    assert g["ch08_success_finetune"] == 0.0 and g["ch08_success_fine_pruning"] == 0.0
    # the tuning setting's cells come from chapter 7's grid: every defense of the chapter is compared
    assert g["ch08_defenses"] == len(DEFENSES) and 0 <= g["ch08_tuning_successes"] <= len(DEFENSES)
    # "the whole grid would take about M minutes at this pace": the n cells' seconds scaled to the whole grid
    assert g["ch08_grid_seconds"] > 0
    assert abs(g["ch08_full_minutes"] - g["ch08_grid_seconds"] / n * g["ch08_full_cells"] / 60) <= 1


def test_ch08_repair_stages_back_the_prose(glue):
    """"Of the N repaired runs on these cells, A kept the target class within its bound after unlearning and B after
    the repair; the repair raised the asr on R of them and pushed P over the asr bound": one run per cell and
    composition, every count within it."""
    from unlearnlib import repairable

    g = glue("08_does_it_hold")
    runs = g["ch08_repair_runs"]
    assert runs == len(repairable()) * g["ch08_cells"]
    assert g["ch08_raise_min"] == 1.0  # "raised (by more than 1 point)"
    for key in ("raised", "pushed", "within_unlearned", "within_repaired"):
        assert 0 <= g[f"ch08_repair_{key}"] <= runs
