"""Defend your own checkpoint with your own images (:func:`defend_checkpoint`, the ``defend`` command), and
write a scenario out as such a checkpoint and image folder (:func:`export_scenario`).

The images (``folder:PATH``, :mod:`unlearnlib.data.folder`, split with ``parts="defender"``: half the
defender pool, half held out) fix the model's input channels, size and number of classes; ``arch`` names a
registered model built for them, and the checkpoint (:mod:`unlearnlib.core.weights`) must match it exactly. The
defense runs through :func:`unlearnlib.experiment.runs.apply_defense`, the path of ``run`` and ``bench``.

The JSON report: ``before``/``after`` metrics on the held-out images (``acc``; with a trigger also ``asr``,
``target_acc`` and ``ra``), where the trigger is the ``--trigger-file`` one (``asr_trigger: "given"``) or else
the defense's own recovered trigger (``"recovered"``; an approximation the defense found on this model, so its
asr says whether *that* trigger still works) or none (``asr`` omitted; ``notes`` says so); ``target`` (given),
``recovered_target`` and ``asr_target`` (the class asr is measured into); ``defense_seconds`` and ``seconds``
(everything: loading, metrics, writing); ``detection`` (:func:`detection`): whether the defense's own statistics
found a backdoor, and their values. A blind defense that finds none writes no changed model, only the report
(``model_written: false``), unless ``force``. The defended weights and the report are written together, only
after success (:func:`unlearnlib.core.cache.atomic_write_all`).
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import torch
from torch import nn

from ..core.cache import atomic_write_all
from ..core.checks import check_class
from ..core.device import resolve_device
from ..core.registry import DEFENSES, MODELS
from ..core.weights import is_safetensors, load_weights, save_weights, state_of, write_weights
from ..data import Data, load_dataset
from ..data.folder import save_image_folder
from ..defenses import get_defense
from ..ml.metrics import evaluate, predict
from ..ml.triggers import load_trigger, save_trigger
from ..models import build_model
from ..recovery.neural_cleanse import ANOMALY_THRESHOLD
from ..recovery.target_search import MIN_SCORE, OUTLIER_THRESHOLD
from .runs import apply_defense


def measure(model: nn.Module, test: Data, trigger: Any, target: int | None) -> dict[str, float]:
    """``acc`` on ``test``, and the trigger metrics of :func:`unlearnlib.ml.metrics.evaluate` when both a trigger
    and a target are known."""
    if trigger is not None and target is not None:
        return evaluate(model, test, trigger, target)
    return {"acc": float((predict(model, test.x) == test.y.cpu()).float().mean())}


def detection(detected: bool | None, info: dict[str, Any]) -> dict[str, Any]:
    """The defense's decision and its evidence: ``detected`` (None: it does not decide -- it was given the trigger
    or the target, or searches none), the statistic it used and the flagged class's value against the threshold:
    the target search's anomaly index and trigger rate (:func:`unlearnlib.recovery.target_search.search_target`),
    or Neural Cleanse's anomaly index (:mod:`unlearnlib.recovery.neural_cleanse`)."""
    out: dict[str, Any] = {"detected": detected}
    if detected is None:
        return out
    if "search_anomaly" in info:
        anomaly, scores = info["search_anomaly"], info["search_scores"]
        k = max(range(len(anomaly)), key=anomaly.__getitem__)
        out.update(statistic="target search anomaly index", flagged_class=k, value=anomaly[k],
                   threshold=OUTLIER_THRESHOLD, trigger_rate=scores[k], min_trigger_rate=MIN_SCORE,
                   kind=info.get("search_kind"))
    elif "nc_anomaly_index" in info or "anomaly_index" in info:
        index = info.get("nc_anomaly_index", info.get("anomaly_index"))
        classes = info.get("nc_classes", list(range(len(index))))
        k = max(range(len(index)), key=index.__getitem__)
        out.update(statistic="Neural Cleanse anomaly index", flagged_class=classes[k], value=index[k],
                   threshold=ANOMALY_THRESHOLD)
    return out


def _jsonable(obj: Any) -> Any:
    return obj.tolist() if hasattr(obj, "tolist") else str(obj)


def _check_paths(model_file: Path, out: Path, report: Path) -> None:
    if is_safetensors(model_file) != is_safetensors(out):
        fmt = "safetensors" if is_safetensors(model_file) else "torch.save"
        raise ValueError(f"out={str(out)!r} must be in model_file's format ({fmt}): use the "
                         f"{'.safetensors' if is_safetensors(model_file) else '.pt'} suffix")
    if out.resolve() == model_file.resolve():
        raise ValueError(f"out={str(out)!r} must differ from model_file: the input checkpoint is never overwritten")
    if report.resolve() in (out.resolve(), model_file.resolve()):
        raise ValueError(f"report={str(report)!r} must differ from out and model_file")
    for name, path in (("out", out), ("report", report)):
        if path.is_dir():
            raise ValueError(f"{name}={str(path)!r} is a folder; give a file path")


def defend_checkpoint(model_file: str | Path, arch: str, dataset: str, defense: str = "agme",
                      unseen: int | None = None, *, out: str | Path, report: str | Path | None = None,
                      trigger_file: str | Path | None = None, target: int | None = None,
                      image_size: int | None = None, seed: int = 0, device: str | torch.device = "auto",
                      progress: bool | None = None, download: bool = False,
                      params: dict[str, Any] | None = None, force: bool = False) -> dict[str, Any]:
    """Defend the checkpoint, write the defended weights to ``out`` (same format) and the report to ``report``
    (default: ``out`` with ``.json``); return the report. ``params``: the defense's constructor arguments (e.g.
    ``{"layers": "fc"}`` to name the edited layer of your model). Where a blind defense finds no backdoor
    (:func:`detection`), only the report is written and ``after`` is the unchanged model's, unless ``force``. Every
    input is checked before anything is written."""
    start = time.perf_counter()
    model_file, out = Path(model_file), Path(out)
    report = out.with_suffix(".json") if report is None else Path(report)
    _check_paths(model_file, out, report)
    cls = DEFENSES.get(defense)
    MODELS.get(arch)
    if cls.needs_trigger and trigger_file is None:
        raise ValueError(f"trigger_file (--trigger-file) is required by defense={defense!r}: it uses backdoor "
                         "knowledge; a defense that recovers the trigger itself is e.g. 'agme'")
    if trigger_file is not None and target is None and not cls.recovers_trigger:
        raise ValueError(f"target (--target) is required with trigger_file for defense={defense!r}: it does not "
                         "search for the target class, and asr is measured into it")
    params = dict(params or {})
    get_defense(defense, **params)  # the defense's own parameter checks, before any loading
    dev = resolve_device(device)
    folder = dataset.startswith("folder:")
    split = load_dataset(dataset, seed=seed, download=download, image_size=image_size,
                         **({"parts": "defender"} if folder else {}))
    c, h, _ = split.image_shape
    if target is not None:
        check_class(target, split.num_classes, "target")
    model = load_weights(build_model(arch, c, split.num_classes, h), model_file, "model_file", arch).to(dev).eval()
    given = load_trigger(trigger_file, (c, h, h), "trigger_file") if trigger_file is not None else None
    out_run = apply_defense(model, defense, split.defender, unseen, trigger=given, target=target,
                            num_classes=split.num_classes, seed=seed, device=dev, progress=progress, **params)
    notes = []
    if given is not None:
        trigger, kind, asr_target = given, "given", target if target is not None else out_run.target
        if target is None:
            notes.append(f"asr is measured into the target class the defense recovered ({out_run.target})")
    elif out_run.trigger is not None:
        trigger, kind, asr_target = out_run.trigger, "recovered", out_run.target
        notes.append("asr uses the trigger the defense recovered on this model, an approximation of the real one; "
                     "pass --trigger-file to measure the real trigger")
    else:
        trigger, kind, asr_target = None, None, None
        notes.append(f"asr omitted: no --trigger-file was given and defense={defense!r} does not recover a trigger")
    found = detection(out_run.detected, out_run.info)
    keep = found["detected"] is False and not force  # no backdoor found: the model stays as it was
    if keep:
        notes.append("no backdoor found: the model is left unchanged and no weights are written (pass --force to "
                     "write the defense's model anyway)")
    elif found["detected"] is False:
        notes.append("no backdoor found, but --force: the defense's model is written")
    test = split.test
    before = measure(model, test, trigger, asr_target)
    after = before if keep else measure(out_run.model, test, trigger, asr_target)
    rec: dict[str, Any] = {
        "model_file": str(model_file), "arch": arch, "dataset": dataset, "classes": list(split.class_names),
        "image_shape": [c, h, h], "defense": defense, "defense_params": params, "unseen": out_run.unseen,
        "test_images": len(test), "defender_pool": len(split.defender), "seed": seed, "target": target,
        "recovered_target": out_run.target, "asr_trigger": kind, "asr_target": asr_target,
        "before": before, "after": after, "defense_seconds": out_run.seconds, "notes": notes,
        "detection": found, "model_written": not keep, "forced": bool(force),
        "out": None if keep else str(out), "info": out_run.info,
    }
    state = state_of(out_run.model)
    rec["seconds"] = time.perf_counter() - start
    text = json.dumps(rec, indent=2, default=_jsonable)
    writes = [(report, lambda p: p.write_text(text))]
    atomic_write_all(writes if keep else [(out, lambda p: write_weights(state, p, out)), *writes])
    return rec


def export_scenario(scenario: Any, root: str | Path, fmt: str = ".pt") -> dict[str, Path]:
    """Write what a user of ``defend`` holds, under ``root`` (a new or empty folder): the backdoored model's state
    dict (``model.pt`` or ``model.safetensors``), clean images they own (``images/``: the scenario's defender
    pool as PNG files in an ImageFolder layout; the attacker never saw them) -- and, what a real user rarely
    has, the attack's trigger (``trigger.pt``, the trigger-file format), to measure the real asr."""
    if fmt not in (".pt", ".safetensors"):
        raise ValueError(f"fmt must be '.pt' or '.safetensors', got {fmt!r}")
    root = Path(root)
    if root.exists() and any(root.iterdir()):
        raise ValueError(f"root={str(root)!r} must be a new or empty folder")
    paths = {"model": root / f"model{fmt}", "images": root / "images", "trigger": root / "trigger.pt"}
    save_weights(scenario.backdoored, paths["model"])
    save_trigger(scenario.trigger, paths["trigger"])
    save_image_folder(scenario.split.defender, paths["images"], scenario.split.class_names)
    return paths
