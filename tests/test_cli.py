import json

import pytest

from unlearnlib.cli import main
from unlearnlib.profiles import get_profile

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
])
def test_run_bad_arguments_name_the_parameter(argv, match, capsys):
    assert main(["run", "--no-progress", *argv]) == 2
    assert match in capsys.readouterr().err


def test_profiles_are_documented():
    for name in ("quick", "full"):
        p = get_profile(name)
        assert p.description and p.epochs > 0
    assert get_profile("quick").dataset == "mnist5k"
