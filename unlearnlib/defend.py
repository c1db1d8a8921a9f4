"""``python -m unlearnlib defend``: defend your own checkpoint with your own images.

::

    python -m unlearnlib defend --model-file ckpt.pt --arch cnn --dataset folder:PATH --defense agme \\
        --unseen 50 --out defended.pt [--trigger-file t.pt] [--target N] [--report PATH] [--image-size N]

The images (``folder:PATH``, :mod:`unlearnlib.image_folder`, split with ``parts="defender"``: half the
defender pool, half held out) fix the model's input channels, size and number of classes; ``--arch`` names a
registered model built for them, and the checkpoint (:mod:`unlearnlib.checkpoint`) must match it exactly. The
defense runs through :func:`unlearnlib.experiment.apply_defense`, the path of ``run`` and ``bench``.

The JSON report: ``before``/``after`` metrics on the held-out images (``acc``; with a trigger also ``asr``,
``target_acc`` and ``ra``), where the trigger is the ``--trigger-file`` one (``asr_trigger: "given"``) or else
the defense's own recovered trigger (``"recovered"``; an approximation the defense found on this model, so its
asr says whether *that* trigger still works) or none (``asr`` omitted; ``notes`` says so); ``target`` (given),
``recovered_target`` and ``asr_target`` (the class asr is measured into); ``defense_seconds`` and ``seconds``
(everything: loading, metrics, writing). The defended weights and the report are written together, only after
success (:func:`unlearnlib.zoo.atomic_write_all`).
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path
from typing import Any

import torch
from torch import nn

from .checkpoint import is_safetensors, load_trigger, load_weights, state_of, write_weights
from .checks import check_class
from .data import Data, load_dataset
from .device import resolve_device
from .metrics import evaluate, predict
from .models import build_model
from .registry import DEFENSES, MODELS
from .zoo import atomic_write_all


def measure(model: nn.Module, test: Data, trigger: Any, target: int | None) -> dict[str, float]:
    """``acc`` on ``test``, and the trigger metrics of :func:`unlearnlib.metrics.evaluate` when both a trigger
    and a target are known."""
    if trigger is not None and target is not None:
        return evaluate(model, test, trigger, target)
    return {"acc": float((predict(model, test.x) == test.y.cpu()).float().mean())}


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
                      params: dict[str, Any] | None = None) -> dict[str, Any]:
    """Defend the checkpoint, write the defended weights to ``out`` (same format) and the report to ``report``
    (default: ``out`` with ``.json``); return the report. ``params``: the defense's constructor arguments (e.g.
    ``{"layers": "fc"}`` to name the edited layer of your model). Every input is checked before anything is
    written."""
    from .defenses import get_defense  # registers the defenses
    from .experiment import apply_defense

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
    test = split.test
    before, after = measure(model, test, trigger, asr_target), measure(out_run.model, test, trigger, asr_target)
    rec: dict[str, Any] = {
        "model_file": str(model_file), "arch": arch, "dataset": dataset, "classes": list(split.class_names),
        "image_shape": [c, h, h], "defense": defense, "defense_params": params, "unseen": out_run.unseen,
        "test_images": len(test), "defender_pool": len(split.defender), "seed": seed, "target": target,
        "recovered_target": out_run.target, "asr_trigger": kind, "asr_target": asr_target,
        "before": before, "after": after, "defense_seconds": out_run.seconds, "notes": notes,
        "out": str(out), "info": out_run.info,
    }
    state = state_of(out_run.model)
    rec["seconds"] = time.perf_counter() - start
    text = json.dumps(rec, indent=2, default=_jsonable)
    atomic_write_all([(out, lambda p: write_weights(state, p, out)), (report, lambda p: p.write_text(text))])
    return rec


def format_report(rec: dict[str, Any]) -> str:
    """A short before/after table in percent."""
    metrics = [m for m in ("acc", "asr", "target_acc", "ra") if m in rec["before"]]
    lines = [f"{rec['defense']} on {rec['model_file']} ({rec['arch']}, {rec['dataset']}: {rec['unseen']} unseen, "
             f"{rec['test_images']} held-out images, {rec['defense_seconds']:.2f} s)",
             f"{'':8s}" + "".join(f"{m:>12s}" for m in metrics)]
    for when in ("before", "after"):
        lines.append(f"{when:8s}" + "".join(f"{100 * rec[when][m]:11.2f}%" for m in metrics))
    if rec["asr_trigger"]:
        lines.append(f"asr: {rec['asr_trigger']} trigger, into class {rec['asr_target']}")
    if rec["recovered_target"] is not None:
        lines.append(f"recovered target: {rec['recovered_target']}")
    lines += [f"note: {n}" for n in rec["notes"]]
    return "\n".join(lines)


def add_defend_parser(sub: Any) -> None:
    p = sub.add_parser("defend", help="defend your own checkpoint with your own images",
                       description=__doc__.split("\n\n")[0])
    p.add_argument("--model-file", type=Path, required=True,
                   help="state dict saved with torch.save(model.state_dict(), path), or a .safetensors file")
    p.add_argument("--arch", required=True, help=f"the model's architecture; one of: {', '.join(MODELS.names())}")
    p.add_argument("--dataset", required=True,
                   help="folder:PATH (one sub-folder of images per class), or a registered dataset")
    p.add_argument("--defense", default="agme", help="a defense name; an unknown name lists the valid ones")
    p.add_argument("--defense-param", action="append", default=None, metavar="KEY=VALUE",
                   help="a defense constructor parameter, repeatable (e.g. layers=fc to name your model's edited "
                        "layer); typed from the defense's signature, a dict as a JSON object "
                        "(recover_params='{\"gen_steps\": 30}')")
    p.add_argument("--unseen", type=int, default=None, help="defender images the defense uses (default: its own)")
    p.add_argument("--out", type=Path, required=True, help="where the defended weights go (same format as the input)")
    p.add_argument("--report", type=Path, default=None, help="the JSON report (default: --out with .json)")
    p.add_argument("--trigger-file", type=Path, default=None,
                   help="torch.save'd {'mask': (1|C,H,W), 'pattern': (C,H,W)} tensors in [0, 1]: the known trigger")
    p.add_argument("--target", type=int, default=None,
                   help="the backdoor's target class if known (given to the defense, which then skips its search)")
    p.add_argument("--image-size", type=int, default=None, help="resize every image to N x N")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--device", default="auto", help="auto (CUDA when present), cpu, cuda, cuda:N")
    p.add_argument("--download", action="store_true", help="download a torchvision dataset if missing")
    p.add_argument("--no-progress", action="store_true", help="hide progress bars")


def cmd_defend(args: argparse.Namespace) -> dict[str, Any]:
    from .cli import parse_defense_params

    params = parse_defense_params(args.defense, args.defense_param)
    rec = defend_checkpoint(args.model_file, args.arch, args.dataset, args.defense, args.unseen, out=args.out,
                            report=args.report, trigger_file=args.trigger_file, target=args.target,
                            image_size=args.image_size, seed=args.seed, device=args.device,
                            progress=False if args.no_progress else None, download=args.download, params=params)
    print(format_report(rec))
    print(f"wrote {args.out} and {args.report or args.out.with_suffix('.json')}")
    return rec


def export_scenario(scenario: Any, root: str | Path, fmt: str = ".pt") -> dict[str, Path]:
    """Write what a user of ``defend`` holds, under ``root`` (a new or empty folder): the backdoored model's state
    dict (``model.pt`` or ``model.safetensors``), clean images they own (``images/``: the scenario's defender
    pool as PNG files in an ImageFolder layout; the attacker never saw them) -- and, what a real user rarely
    has, the attack's trigger (``trigger.pt``, the trigger-file format), to measure the real asr."""
    from .checkpoint import save_trigger, save_weights
    from .image_folder import save_image_folder

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
