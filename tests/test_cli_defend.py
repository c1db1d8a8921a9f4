"""``python -m unlearnlib defend``: your own checkpoint and images, every bad input an ``error:`` line."""

import json
import os
import subprocess
import sys

import numpy as np
import pytest
import torch
from PIL import Image
from safetensors.torch import load_file, save_file

from unlearnlib.cli import build_parser, main
from unlearnlib.core.cache import atomic_write_all
from unlearnlib.data import Data
from unlearnlib.data.folder import save_image_folder
from unlearnlib.experiment.scenario import make_scenario
from unlearnlib.ml.triggers import save_trigger
from unlearnlib.models import build_model


@pytest.fixture(scope="module")
def scenario():
    return make_scenario("quick", "badnets", 0, progress=False)


@pytest.fixture(scope="module")
def files(scenario, tmp_path_factory):
    """The backdoored model as a state dict (.pt and .safetensors), its trigger, and 300 unseen digits as PNGs."""
    root = tmp_path_factory.mktemp("defend")
    sd = {k: v.detach().cpu().contiguous() for k, v in scenario.backdoored.state_dict().items()}
    torch.save(sd, root / "ckpt.pt")
    save_file(sd, str(root / "ckpt.safetensors"))
    save_trigger(scenario.trigger, root / "trigger.pt")
    d, t = scenario.split.defender.take(100, 0), scenario.split.test.take(200, 0)
    save_image_folder(Data(torch.cat([d.x, t.x]), torch.cat([d.y, t.y])), root / "digits",
                      scenario.split.class_names)
    return root


def defend(files, out, *extra):
    return main(["defend", "--model-file", str(files / "ckpt.pt"), "--arch", "cnn", "--dataset",
                 f"folder:{files / 'digits'}", "--out", str(out), "--no-progress", *extra])


def test_agme_bdk_with_the_trigger_file_removes_the_backdoor(files, tmp_path, capsys):
    out = tmp_path / "defended.pt"
    assert defend(files, out, "--defense", "agme-bdk", "--trigger-file", str(files / "trigger.pt"),
                  "--target", "0") == 0
    rec = json.loads(out.with_suffix(".json").read_text())
    assert rec["asr_trigger"] == "given" and rec["asr_target"] == 0 and rec["target"] == 0
    assert (rec["unseen"], rec["test_images"], rec["defender_pool"]) == (50, 150, 150)  # agme-bdk's default_unseen
    assert rec["image_shape"] == [1, 28, 28] and rec["classes"] == [str(i) for i in range(10)]
    assert rec["before"]["asr"] > 0.9 and rec["after"]["asr"] < 0.2, rec
    assert rec["after"]["acc"] > rec["before"]["acc"] - 0.05 and rec["before"]["acc"] > 0.85
    assert rec["defense_seconds"] > 0 and rec["seconds"] >= rec["defense_seconds"]
    model = build_model("cnn", 1, 10, 28)
    model.load_state_dict(torch.load(out, weights_only=True))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["defended.json", "defended.pt"]  # no temp files left
    printed = capsys.readouterr().out
    assert "asr: given trigger, into class 0" in printed and f"wrote {out}" in printed


def test_finetune_without_a_trigger_reports_accuracy_and_says_why_asr_is_missing(files, tmp_path):
    out, report = tmp_path / "ft.pt", tmp_path / "reports" / "ft-report.json"
    assert defend(files, out, "--defense", "finetune", "--unseen", "20", "--report", str(report),
                  "--defense-param", "epochs=2") == 0
    rec = json.loads(report.read_text())
    assert rec["defense_params"] == {"epochs": 2} and rec["info"]["epochs"] == 2
    assert set(rec["before"]) == {"acc"} and rec["asr_trigger"] is None and rec["recovered_target"] is None
    assert "asr omitted" in rec["notes"][0] and rec["unseen"] == 20
    assert 0.5 < rec["after"]["acc"] <= 1 and not out.with_suffix(".json").exists()


def test_safetensors_in_safetensors_out_same_weights_as_torch_format(files, tmp_path):
    args = ["--defense", "agme-bdk", "--trigger-file", str(files / "trigger.pt"), "--target", "0"]
    assert defend(files, tmp_path / "a.pt", *args) == 0
    assert main(["defend", "--model-file", str(files / "ckpt.safetensors"), "--arch", "cnn", "--dataset",
                 f"folder:{files / 'digits'}", "--out", str(tmp_path / "b.safetensors"), "--no-progress", *args]) == 0
    a, b = torch.load(tmp_path / "a.pt", weights_only=True), load_file(str(tmp_path / "b.safetensors"))
    assert a.keys() == b.keys() and all(torch.allclose(a[k], b[k], atol=1e-6) for k in a)
    assert json.loads((tmp_path / "b.json").read_text())["after"]["asr"] < 0.2


def write_png_folder(root, sizes):
    for cls, size in sizes.items():
        (root / cls).mkdir(parents=True)
        for i in range(4):
            Image.fromarray(np.full((size, size), 40 * i, np.uint8), "L").save(root / cls / f"{i}.png")
    return root


@pytest.fixture
def bad(files, tmp_path, scenario):
    """Bad inputs, each as (extra/replaced argv, expected message)."""
    pickled = tmp_path / "pickled.pt"
    torch.save(scenario.backdoored, pickled)
    three = tmp_path / "three"
    for c in range(3):
        sub = scenario.split.test.of_class(c).take(10, 0)
        save_image_folder(Data(sub.x, torch.full((10,), c)), three / str(c), prefix=f"c{c}_")
    wrong_trigger = tmp_path / "wrong_trigger.pt"
    torch.save({"mask": torch.ones(1, 32, 32), "pattern": torch.ones(3, 32, 32)}, wrong_trigger)
    return {
        "arch": (["--arch", "preact-resnet18"], "does not match arch='preact-resnet18' for this data: "
                 "106 missing key(s) (layer1.0.bn1.weight"),
        "classes": (["--dataset", f"folder:{three}"],
                    "shape mismatch(es) (checkpoint != model: fc2.weight (10, 128) != (3, 128)"),
        "pickled": (["--model-file", str(pickled)], "holds a pickled Python object (unlearnlib.models.cnn.SmallCNN), "
                    "which weights_only loading refuses"),
        "no-file": (["--model-file", str(tmp_path / "none.pt")], "model_file="),
        "one-class": (["--dataset", f"folder:{write_png_folder(tmp_path / 'one', {'a': 8})}"], "found one class"),
        "mixed": (["--dataset", f"folder:{write_png_folder(tmp_path / 'mix', {'a': 8, 'b': 9})}"],
                  "images have mixed sizes"),
        "empty": (["--dataset", f"folder:{(tmp_path / 'empty').mkdir() or tmp_path / 'empty'}"],
                  "the folder is empty"),
        "no-folder": (["--dataset", f"folder:{tmp_path / 'nowhere'}"], "the folder does not exist"),
        "no-trigger": (["--defense", "agme-bdk"], "trigger_file (--trigger-file) is required by defense='agme-bdk'"),
        "trigger-shape": (["--defense", "agme-bdk", "--trigger-file", str(wrong_trigger), "--target", "0"],
                          "mask (1, 32, 32) and pattern (3, 32, 32) do not fit"),
        "no-target": (["--defense", "finetune", "--trigger-file", str(files / "trigger.pt")],
                      "target (--target) is required with trigger_file for defense='finetune'"),
        "format": (["--out", str(tmp_path / "out" / "d.safetensors")], "must be in model_file's format"),
        "unseen": (["--defense", "finetune", "--unseen", "151"], "unseen must be an integer in [1, 150]"),
        "defense": (["--defense", "magic"], "defense='magic' is not known"),
        "report-dir": (["--report", str(files)], "is a folder; give a file path"),
        "target": (["--defense", "agme", "--target", "10"], "target must be a class index in [0, 9]"),
        "defense-param": (["--defense", "finetune", "--defense-param", "epochs=two"],
                          "--defense-param epochs='two': finetune's epochs expects a int, like 10"),
        "defense-value": (["--defense", "finetune", "--defense-param", "optimizer=rmsprop"], "optimizer"),
    }


@pytest.mark.parametrize("case", ["arch", "classes", "pickled", "no-file", "one-class", "mixed", "empty",
                                  "no-folder", "no-trigger", "trigger-shape", "no-target", "format", "unseen",
                                  "defense", "report-dir", "target", "defense-param", "defense-value"])
def test_bad_inputs_are_one_error_line_and_write_nothing(files, tmp_path, bad, case, capsys):
    argv, match = bad[case]
    base = {"--model-file": str(files / "ckpt.pt"), "--arch": "cnn", "--dataset": f"folder:{files / 'digits'}",
            "--out": str(tmp_path / "out" / "d.pt")}
    extra = []
    for i in range(0, len(argv), 2):
        (base.__setitem__ if argv[i] in base else lambda k, v: extra.extend([k, v]))(argv[i], argv[i + 1])
    assert main(["defend", "--no-progress", *[a for kv in base.items() for a in kv], *extra]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and match in err and "Traceback" not in err, err
    assert not (tmp_path / "out").exists() or not any((tmp_path / "out").iterdir())


@pytest.mark.slow
def test_pickled_checkpoint_from_the_shell_is_an_error_line_without_traceback(files, tmp_path, scenario):
    torch.save(scenario.backdoored, tmp_path / "model.pt")
    proc = subprocess.run([sys.executable, "-m", "unlearnlib", "defend", "--model-file", str(tmp_path / "model.pt"),
                           "--arch", "cnn", "--dataset", f"folder:{files / 'digits'}", "--out",
                           str(tmp_path / "d.pt")], capture_output=True, text=True, timeout=300,
                          env={**os.environ, "UNLEARNLIB_PROGRESS": "0"})
    assert proc.returncode == 2 and proc.stderr.startswith("error: ") and "Traceback" not in proc.stderr
    assert "holds a pickled Python object" in proc.stderr and len(proc.stderr.strip().splitlines()) == 1
    assert sorted(p.name for p in tmp_path.iterdir()) == ["model.pt"]


def test_atomic_write_all_writes_all_files_or_none(tmp_path):
    a, b = tmp_path / "a.txt", tmp_path / "b.txt"

    def fail(_p):
        raise OSError("disk full")

    with pytest.raises(OSError, match="disk full"):
        atomic_write_all([(a, lambda p: p.write_text("A")), (b, fail)])
    assert list(tmp_path.iterdir()) == []
    b.mkdir()  # the second rename fails: the first file must not remain
    with pytest.raises(OSError):
        atomic_write_all([(a, lambda p: p.write_text("A")), (b, lambda p: p.write_text("B"))])
    assert [p.name for p in tmp_path.iterdir()] == ["b.txt"] and b.is_dir()
    b.rmdir()
    atomic_write_all([(a, lambda p: p.write_text("A")), (b, lambda p: p.write_text("B"))])
    assert (a.read_text(), b.read_text()) == ("A", "B") and len(list(tmp_path.iterdir())) == 2


def test_dataset_unavailable_is_an_error_line_and_download_is_a_flag(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("UNLEARNLIB_DATA", str(tmp_path))
    assert main(["run", "--dataset", "cifar10", "--no-progress"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: dataset='cifar10' could not be loaded") and "--download" in err
    parser = build_parser()
    for cmd in (["run"], ["bench"], ["defend", "--model-file", "m.pt", "--arch", "cnn", "--dataset", "x",
                                     "--out", "o.pt"]):
        assert parser.parse_args([*cmd, "--download"]).download is True
    assert parser.parse_args(["run"]).download is None  # the profile decides


def test_run_trains_on_a_folder_dataset_resized(tmp_path, capsys):
    rng = np.random.default_rng(0)
    for c in ("a", "b", "c"):
        (tmp_path / "imgs" / c).mkdir(parents=True)
        for i in range(20):
            Image.fromarray(rng.integers(0, 256, (10, 10, 3), dtype=np.uint8), "RGB").save(
                tmp_path / "imgs" / c / f"{i}.png")
    out = tmp_path / "r.json"
    assert main(["run", "--dataset", f"folder:{tmp_path / 'imgs'}", "--image-size", "12", "--defense", "none",
                 "--out", str(out), "--no-progress"]) == 0
    rec = json.loads(out.read_text())
    assert rec["dataset"] == f"folder:{tmp_path / 'imgs'}" and rec["after"] == rec["before"]  # defense "none"
    assert main(["run", "--dataset", f"folder:{tmp_path / 'imgs'}", "--no-progress"]) == 0  # 10x10: no resize needed
    assert main(["run", "--dataset", "mnist5k", "--image-size", "12", "--no-progress"]) == 2
    assert "image_size and parts apply to folder:PATH datasets only" in capsys.readouterr().err


def test_a_checkpoint_with_non_finite_weights_names_the_tensor(files, tmp_path, capsys):
    """A broken checkpoint (a training run that diverged) is refused on load, naming the tensor; not deep inside a
    defense's linear solve."""
    sd = torch.load(files / "ckpt.pt", weights_only=True)
    sd["fc1.weight"][0, 0] = float("nan")
    torch.save(sd, tmp_path / "nan.pt")
    assert main(["defend", "--model-file", str(tmp_path / "nan.pt"), "--arch", "cnn", "--dataset",
                 f"folder:{files / 'digits'}", "--out", str(tmp_path / "d.pt"), "--no-progress"]) == 2
    err = capsys.readouterr().err
    assert "holds non-finite values (NaN or inf) in 1 tensor(s): fc1.weight" in err
    assert not (tmp_path / "d.pt").exists()


def test_a_blind_defense_that_finds_no_backdoor_leaves_a_clean_model_unchanged_unless_forced(scenario, files,
                                                                                               tmp_path, capsys):
    clean = tmp_path / "clean.pt"
    torch.save({k: v.detach().cpu() for k, v in scenario.clean.state_dict().items()}, clean)
    args = ["defend", "--model-file", str(clean), "--arch", "cnn", "--dataset", f"folder:{files / 'digits'}",
            "--defense", "nc-unlearn", "--unseen", "100", "--out", str(tmp_path / "d.pt"), "--no-progress"]
    assert main(args) == 0
    text = capsys.readouterr().out
    rec = json.loads((tmp_path / "d.json").read_text())
    assert rec["detection"]["detected"] is False and rec["detection"]["value"] <= rec["detection"]["threshold"]
    assert not rec["model_written"] and rec["out"] is None and rec["after"] == rec["before"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["clean.pt", "d.json"]  # no model written
    assert "no backdoor found: Neural Cleanse anomaly index" in text and "d.json only (model unchanged)" in text
    assert main([*args, "--force"]) == 0
    rec = json.loads((tmp_path / "d.json").read_text())
    assert rec["model_written"] and rec["forced"] and (tmp_path / "d.pt").is_file()
    assert any("--force" in n for n in rec["notes"])


def test_detection_reads_the_search_or_neural_cleanse_evidence():
    from unlearnlib.experiment.defend import detection
    search = {"search_anomaly": [0.0, 44.9, 1.0], "search_scores": [0.0, 0.7, 0.1], "search_kind": "blend"}
    assert detection(True, search) == {"detected": True, "statistic": "target search anomaly index",
                                       "flagged_class": 1, "value": 44.9, "threshold": 2.0, "trigger_rate": 0.7,
                                       "min_trigger_rate": 0.25, "kind": "blend"}
    nc = {"nc_anomaly_index": [0.3, 2.5], "nc_classes": [4, 7]}
    assert detection(False, nc)["flagged_class"] == 7 and detection(False, nc)["value"] == 2.5
    assert detection(None, search) == {"detected": None}  # told the trigger or target: no decision
