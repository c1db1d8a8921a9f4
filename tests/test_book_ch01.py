"""Chapter 1: the glued numbers back the claims its prose makes (issue: acc >= 95%, asr >= 95% on quick)."""


def test_ch01_backdoors_are_planted(glue):
    g = glue("01_backdoor_attacks")
    for attack in ("badnets", "blended"):
        assert g[f"ch01_{attack}_acc"] >= 95.0
        assert g[f"ch01_{attack}_asr"] >= 95.0
        assert g[f"ch01_{attack}_target_acc"] >= 90.0
        assert g[f"ch01_{attack}_ra"] <= 5.0
        assert 0.0 <= g[f"ch01_{attack}_asr_floor"] <= 2.0
    assert g["ch01_clean_acc"] >= 95.0
    assert g["ch01_clean_asr_badnets"] <= 2.0 and g["ch01_clean_asr_blended"] <= 2.0
    assert (g["ch01_n_train"], g["ch01_n_test"], g["ch01_n_defender"]) == (3500, 1000, 500)
    assert g["ch01_n_poisoned"] == round(g["ch01_poison_pct"] / 100 * g["ch01_n_train"])
    assert g["ch01_one_pct_images"] == round(0.01 * g["ch01_n_train"])  # exercise 2's solution: "1% poison (N images)"
    assert g["ch01_asr_alpha_half"] < g["ch01_blended_asr"]


def test_ch01_more_attacks_plant(glue):
    """TrojanNN, IMC and WaNet reach asr >= 90% at acc >= 95% on quick with a small floor (the prose says
    so); WaNet at the paper's k = 4, s = 0.5 with its own, longer training budget (the prose says that too)."""
    g = glue("01_backdoor_attacks")
    for attack in ("trojannn", "imc", "wanet"):
        assert g[f"ch01_{attack}_acc"] >= 95.0
        assert g[f"ch01_{attack}_asr"] >= 90.0
        assert 0.0 <= g[f"ch01_{attack}_asr_floor"] <= 5.0
    assert (g["ch01_wanet_k"], g["ch01_wanet_s"]) == (4, 0.5)
    assert g["ch01_wanet_epochs"] > g["ch01_epochs"] == 10
    # the attacker's second try is longer still, and this chapter's model passes the attacker's own check
    assert g["ch01_wanet_retry_epochs"] > g["ch01_wanet_epochs"] and g["ch01_planted_pct"] == 90
    assert g["ch01_planted_pct"] <= g["ch01_wanet_check"] <= 100.0
    assert 0.0 < g["ch01_wanet_max_shift"] < 2.0 and 0.0 < g["ch01_wanet_mean_change"] < 0.1


def test_ch01_random_position_badnets_does_not_plant_and_the_map_says_where(glue):
    """BAERASE's BadNets (random values, random position) does not plant in quick, and the prose says so and
    why: it fires on the blank margin and not where the digits are, and the model fits few of its own poisoned
    images. If it ever plants, this fails and the section must be rewritten."""
    g = glue("01_backdoor_attacks")
    assert g["ch01_anywhere_asr"] < 90.0  # ATTACKER_ASR: "does not plant"
    assert g["ch01_anywhere_acc"] >= 90.0
    assert g["ch01_anywhere_asr_blank"] >= g["ch01_anywhere_asr_inked"] + 30.0
    assert g["ch01_anywhere_fit"] < 90.0
    assert g["ch01_anywhere_n"] == 200 and g["ch01_anywhere_blank_ink"] < g["ch01_anywhere_inked_ink"]
    assert g["ch01_anywhere_stride"] == 2  # the chapter's position_stride: the map at every second position


def test_ch01_more_poison_buys_the_grey_patch_asr_only_with_accuracy(glue):
    """Why BAERASE's BadNets cannot be planted by a change of training here (the prose says so): with a
    quarter and a half of the training images poisoned, its asr rises while accuracy falls far below the clean
    model's, and it still does not plant; a checkerboard at the same random positions plants at a quarter with
    accuracy kept. If the grey patch ever plants this way, this fails and the section must be rewritten."""
    g = glue("01_backdoor_attacks")
    assert (g["ch01_sweep_low_pct"], g["ch01_sweep_mid_pct"], g["ch01_sweep_high_pct"]) == (10, 25, 50)
    assert abs(g["ch01_sweep_grey_low_asr"] - g["ch01_anywhere_asr"]) <= 0.1  # the same model as above
    assert g["ch01_sweep_grey_low_asr"] < g["ch01_sweep_grey_mid_asr"] < g["ch01_sweep_grey_high_asr"] < 90.0
    clean = g["ch01_sweep_clean_acc"]
    assert g["ch01_sweep_grey_mid_acc"] <= clean - 4.0 and g["ch01_sweep_grey_high_acc"] <= clean - 10.0
    assert g["ch01_sweep_checker_mid_asr"] >= 90.0 and g["ch01_sweep_checker_mid_acc"] >= clean - 2.0
    assert g["ch01_sweep_checker_low_asr"] > g["ch01_sweep_grey_low_asr"]
