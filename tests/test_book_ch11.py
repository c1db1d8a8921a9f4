"""Chapter 11: the `defend` command on a saved checkpoint and image folder backs the chapter's prose."""


def test_ch11_defend_report_backs_the_prose(glue):
    g = glue("11_defend_your_own_model")
    # "recovered class X as the backdoor's target (the attack's target is Y)"
    assert g["ch11_recovered_target"] == g["ch11_target"]
    assert g["ch11_unseen"] == 50 and g["ch11_test_images"] == 250
    # held-out accuracy before/after, from the report
    assert g["ch11_acc_before"] >= 90.0 and g["ch11_acc_before"] - g["ch11_acc_after"] <= 2.0
    # the recovered trigger fired before the edit and no longer after it
    assert g["ch11_rasr_before"] >= 80.0 and g["ch11_rasr_after"] <= 10.0
    # the attacker's real trigger, on the 1,000 test digits outside the folder
    assert g["ch11_asr_before"] >= 95.0 and g["ch11_asr_after"] <= 10.0
    assert g["ch11_test_acc_before"] - g["ch11_test_acc_after"] <= 2.0
    assert 0 < g["ch11_seconds"] <= g["ch11_total_seconds"]
    # "one error: line, exit code 2"
    assert g["ch11_bad_exit"] == 2
