"""Chapter 8 ("Does it hold?"): the glued numbers come from the stored final grid and back what its prose says."""

import json
import re
from pathlib import Path

import pytest

from unlearnlib import DEFENSES, load_evidence, machine, rule, summarise_robustness

ROOT = Path(__file__).resolve().parents[1]


def key(name: str) -> str:
    return name.replace("+repair", "_with_repair").replace("-", "_")


@pytest.fixture(scope="module")
def stored():
    df, prov = load_evidence(ROOT / "results" / "final-grid")
    return rule.judged(df), prov


def test_ch08_reads_the_stored_final_grid(glue, stored):
    g, (df, prov) = glue("08_does_it_hold"), stored
    assert g["ch08_cells"] == prov["cells"] >= 120 and g["ch08_grid_seed"] == prov["grid_seed"]
    assert g["ch08_planted"] == int(df.drop_duplicates("cell")["planted"].sum())
    assert g["ch08_defenses"] == len(prov["defenses"]) == len(DEFENSES.names()) - 1  # every defense and composition
    assert (g["ch08_asr_max"], g["ch08_acc_drop_max"], g["ch08_target_drop_max"]) == (2, 1.5, 3)
    summary = summarise_robustness(df).set_index("defense")
    for name, r in summary.iterrows():  # every rate in the prose is the stored grid's, in its interval
        k = key(name)
        assert g[f"ch08_{k}_success_rate"] == round(100 * r["success_rate"], 1)
        assert g[f"ch08_{k}_ci_low"] <= g[f"ch08_{k}_success_rate"] <= g[f"ch08_{k}_ci_high"]


def test_ch08_claims_hold_on_the_grid(glue):
    g = glue("08_does_it_hold")
    # "Knowing the trigger, the edit holds": most planted cells, and better than any blind pipeline
    assert g["ch08_agme_bdk_ci_low"] >= 75.0
    assert g["ch08_agme_bdk_ci_low"] > max(g[f"ch08_{k}_ci_high"] for k in ("agme", "agme_repair",
                                                                              "agme_with_repair"))
    # "Without the trigger, the edit works on about half ... the three intervals overlap"
    blind = ("agme", "agme_repair", "agme_with_repair")
    assert all(30.0 <= g[f"ch08_{k}_success_rate"] <= 70.0 for k in blind)
    assert max(g[f"ch08_{k}_ci_low"] for k in blind) < min(g[f"ch08_{k}_ci_high"] for k in blind)
    # "its failures leave the asr over the bound far more often than they cost accuracy"
    assert g["ch08_agme_breaks_asr"] >= 3 * max(1, g["ch08_agme_breaks_acc_drop"])
    # "For the unlearning defenses the repair step is what counts ... larger than the intervals"
    for k in ("baerase", "nc_unlearn"):
        assert g[f"ch08_{k}_with_repair_ci_low"] > g[f"ch08_{k}_ci_high"], k
    # "takes the target class with it": the target bound is the one BAERASE breaks most
    assert g["ch08_baerase_breaks_target_acc_drop"] > max(g["ch08_baerase_breaks_asr"],
                                                          g["ch08_baerase_breaks_acc_drop"])
    # "Fine-tuning and fine-pruning remove nothing"
    assert g["ch08_finetune_success_rate"] <= 5.0 and g["ch08_fine_pruning_success_rate"] <= 5.0


def test_ch08_failure_cases_are_reproduced(glue, stored):
    g = glue("08_does_it_hold")
    assert g["ch08_cases"] == 3
    reproduced = [g[f"ch08_case{i}_reproduced"] for i in range(1, 4)]
    assert g["ch08_reproduced"] == sum(reproduced)
    if machine() == stored[1]["cpu"]:  # on the grid's own processor the rerun is exact (training is deterministic)
        assert all(reproduced)
    # the chapter says how many reruns agree, and for each that does not, what it gave instead
    assert f"{sum(reproduced)} of the 3 cells gave their stored numbers" in g["ch08_rerun_note"]
    for i, ok in enumerate(reproduced, 1):
        assert ok or (g[f"ch08_case{i}_cell"] in g["ch08_rerun_note"]
                      and f"{g[f'ch08_case{i}_rerun_asr']:g}%" in g["ch08_rerun_note"])
        assert g[f"ch08_case{i}_found"] == int(g[f"ch08_case{i}_found_class"] == g[f"ch08_case{i}_true_class"])


def test_ch08_prose_is_short():
    """At most about 1,500 words of prose (code blocks and glue roles' names not counted as prose)."""
    cells = json.loads((ROOT / "book" / "08_does_it_hold.ipynb").read_text())["cells"]
    text = " ".join("".join(c["source"]) for c in cells if c["cell_type"] == "markdown")
    text = re.sub(r"```.*?```", " ", text, flags=re.S)
    text = re.sub(r"\{glue:text\}`[^`]+`", "N", text)
    assert len(text.split()) <= 1550


def test_ch08_failure_cases_are_the_ones_their_paragraphs_explain(glue, stored):
    g, df = glue("08_does_it_hold"), stored[0]
    for i in range(1, 4):  # the paragraphs quote the stored runs (the evidence), not the reruns
        row = df[(df["cell"] == g[f"ch08_case{i}_cell"]) & (df["defense"] == g["ch08_best_blind"])].iloc[0]
        assert row["planted"] and not row["success"] and int(row["found_target"]) == g[f"ch08_case{i}_found_class"]
        assert g[f"ch08_case{i}_asr_after"] == round(100 * row["asr"], 1)
    # first: a wrong target, the backdoor untouched
    assert g["ch08_case1_found"] == 0 and g["ch08_case1_asr_after"] >= 50.0
    # second: the right target and a WaNet warp removed, clean accuracy paying
    assert g["ch08_case2_found"] == 1 and "wanet" in g["ch08_case2_what"] and g["ch08_case2_reason"] == "acc drop"
    assert g["ch08_case2_asr_after"] <= 2.0 < g["ch08_case2_asr_before"] and g["ch08_case2_acc_drop"] > 1.5
    # third: the right target and the backdoor removed, the target class lost and not given back
    assert g["ch08_case3_found"] == 1 and g["ch08_case3_reason"] == "target acc drop"
    assert g["ch08_case3_asr_after"] <= 2.0 and g["ch08_case3_target_drop"] > 3.0
