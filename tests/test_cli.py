import json

import pytest

from unlearnlib.cli import main
from unlearnlib.experiment.profiles import get_profile

KEYS = {"dataset", "attack", "defense", "seed", "target", "unseen", "before", "after", "defense_seconds"}
METRICS = {"acc", "asr", "target_acc", "ra", "asr_floor"}


def test_run_none_writes_the_json_schema(tmp_path, capsys):
    out = tmp_path / "r.json"
    assert main(["run", "--dataset", "mnist5k", "--attack", "badnets", "--defense", "none", "--seed", "0",
                 "--out", str(out), "--no-progress"]) == 0
    rec = json.loads(out.read_text())
    assert KEYS <= set(rec) and set(rec["before"]) == METRICS and set(rec["after"]) == METRICS
    assert rec["after"] == rec["before"] and rec["defense_seconds"] == 0 and rec["unseen"] == 0
    assert (rec["dataset"], rec["attack"], rec["defense"], rec["seed"], rec["target"]) == ("mnist5k", "badnets",
                                                                                           "none", 0, 0)
    assert "asr_floor" in capsys.readouterr().out


@pytest.mark.parametrize("argv, match", [
    (["--defense", "magic"], "defense='magic' is not known; expected one of: none"),
    (["--attack", "lira"], "attack='lira' is not known"),
    (["--dataset", "imagenet"], "dataset='imagenet' is not known"),
    (["--profile", "huge"], "profile='huge' is not known; expected one of: quick, full"),
    (["--target", "12"], "target must be a class index"),
    (["--poison-ratio", "2"], "poison_ratio must be a number"),
    (["--defense", "agme-bdk", "--defense-param", "magic=1"],
     "--defense-param 'magic' is not a parameter of agme-bdk; valid keys: layers, lam, mu"),
    (["--defense", "agme-bdk", "--defense-param", "mu=much"], "agme-bdk's mu expects a float, like 1.0"),
    (["--defense", "agme-bdk", "--defense-param", "cascade_agreement=2"], "cascade_agreement"),
    (["--defense", "finetune", "--defense-param", "epochs"], "--defense-param must be KEY=VALUE, got 'epochs'"),
    (["--defense", "agme", "--defense-param", "recover_params={gen_steps: 5}"],
     "--defense-param recover_params='{gen_steps: 5}': not a JSON object"),
])
def test_run_bad_arguments_name_the_parameter(argv, match, capsys):
    assert main(["run", "--no-progress", *argv]) == 2
    assert match in capsys.readouterr().err


def test_profiles_are_documented():
    for name in ("quick", "full"):
        p = get_profile(name)
        assert p.description and p.epochs > 0
    assert get_profile("quick").dataset == "mnist5k"


def test_defense_params_are_typed_from_the_whole_constructor_chain():
    """``agme`` passes ``**kw`` to ``agme-bdk``: its ``lam`` is a parameter too; device/seed/progress are not."""
    from unlearnlib.experiment.params import parse_defense_params

    assert parse_defense_params("agme", ["lam=2", "layers=fc1", "augment=yes", "nc_steps=5"]) == {
        "lam": 2.0, "layers": "fc1", "augment": True, "nc_steps": 5}
    # augment's default is None (decided by the recovery): the boolean words still type it; a layer name stays text
    assert parse_defense_params("agme", ["augment=False", "layers=1"]) == {"augment": False, "layers": "1"}
    assert parse_defense_params("agme-bdk+repair", ["repair_mu=3", "mu=0.5"]) == {"repair_mu": 3.0, "mu": 0.5}
    with pytest.raises(ValueError, match="'seed' is not a parameter of finetune"):
        parse_defense_params("finetune", ["seed=3"])


def test_a_dict_parameter_takes_a_json_object_and_every_profile_setting_round_trips():
    """``recover_params={"gen_steps": 5}`` from the shell is a dict; :func:`param_pairs` writes any profile's
    defense settings as the ``--defense-param`` texts that parse back to the same values (chapter 11 passes the
    profile's settings to ``unlearnlib defend`` this way)."""
    from unlearnlib.experiment.params import param_pairs, parse_defense_params, parse_grid_params
    from unlearnlib.experiment.profiles import PROFILES

    assert parse_defense_params("agme", ['recover_params={"gen_steps": 5, "kinds": ["blend"]}']) == {
        "recover_params": {"gen_steps": 5, "kinds": ["blend"]}}
    assert param_pairs({"nc_steps": 20, "recover_params": {"b": 1, "a": 2}, "kinds": ("patch", "blend")}) == [
        "nc_steps=20", 'recover_params={"a": 2, "b": 1}', "kinds=patch,blend"]
    assert parse_grid_params(['agme:recover_params={"gen_steps": 5}']) == {"agme": {"recover_params": {"gen_steps": 5}}}
    checked = 0
    for name in PROFILES.names():
        for defense, params in get_profile(name).defense_params.items():
            assert parse_defense_params(defense, param_pairs(params)) == params, (name, defense)
            checked += 1
    assert checked >= 6  # the smoke profile sets six defenses
    for bad, match in (('recover_params={"gen_steps": 5', "not a JSON object"),
                       ("recover_params={1, 2}", "not a JSON object")):
        with pytest.raises(ValueError, match=match) as info:
            parse_defense_params("agme", [bad])
        assert "--defense-param recover_params=" in str(info.value)


def test_help_lists_the_commands_attacks_defenses_and_defaults(capsys):
    from unlearnlib import ATTACKS, DEFENSES, __version__

    with pytest.raises(SystemExit):
        main(["--version"])
    assert capsys.readouterr().out.strip() == f"unlearnlib {__version__}"
    with pytest.raises(SystemExit):
        main(["--help"])
    top = capsys.readouterr().out
    assert all(c in top for c in ("demo", "run", "bench", "export", "defend")) and "``" not in top
    with pytest.raises(SystemExit):
        main(["run", "--help"])
    text = " ".join(capsys.readouterr().out.split())
    assert all(a in text for a in ATTACKS.names()) and all(d in text for d in DEFENSES.names())
    assert "(default: badnets)" in text and "(default: 0)" in text and "default: quick)" in text


def test_a_run_whose_attack_did_not_plant_says_so(monkeypatch, capsys):
    """BAERASE's BadNets (a grey patch at a random position) reaches ~40% on mnist5k: the run warns before its
    numbers."""
    from unlearnlib.cli import run as cli_run

    class Unplanted:
        attack, before = "badnets", {"asr": 0.37}

    def fake(*a, **kw):
        return Unplanted()

    monkeypatch.setattr(cli_run, "make_scenario", fake)
    monkeypatch.setattr(cli_run, "run_defense", lambda *a, **kw: (_ for _ in ()).throw(ValueError("stop")))
    assert main(["run", "--attack", "badnets", "--no-progress"]) == 2
    err = capsys.readouterr().err
    assert "warning: the badnets backdoor did not plant (asr 37.0% < 50%)" in err


@pytest.mark.slow
def test_demo_plants_and_removes_a_backdoor_with_the_metrics_explained(capsys):
    rec = main(["demo", "--no-progress"])
    out = capsys.readouterr().out
    assert rec == 0 and "backdoored model" in out and "after agme-bdk" in out and "attack success rate" in out
    assert "robust accuracy        triggered test images" in out and "warning" not in out


@pytest.mark.slow
def test_export_writes_what_defend_takes(tmp_path, capsys):
    assert main(["export", "--attack", "badnets", "--out", str(tmp_path / "m"), "--no-progress"]) == 0
    out = capsys.readouterr().out
    assert (tmp_path / "m" / "model.pt").is_file() and (tmp_path / "m" / "trigger.pt").is_file()
    assert len(list((tmp_path / "m" / "images").rglob("*.png"))) == 500 and "python -m unlearnlib defend" in out
    cmd = out.split("defend it without the trigger:\n  python -m unlearnlib ")[1].splitlines()[0].split()
    assert main([*cmd, "--defense", "agme-bdk", "--trigger-file", str(tmp_path / "m" / "trigger.pt"), "--target", "0",
                 "--no-progress"]) == 0
    report = json.loads((tmp_path / "m" / "defended.json").read_text())
    assert report["after"]["asr"] < report["before"]["asr"]
