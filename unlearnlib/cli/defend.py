"""``python -m unlearnlib defend``: defend your own checkpoint with your own images (the command line of
:func:`unlearnlib.experiment.defend.defend_checkpoint`).

::

    python -m unlearnlib defend --model-file ckpt.pt --arch cnn --dataset folder:PATH --defense agme \\
        --unseen 50 --out defended.pt [--trigger-file t.pt] [--target N] [--report PATH] [--image-size N] [--force]
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from ..core.registry import DEFENSES, MODELS
from ..experiment.defend import defend_checkpoint
from ..experiment.params import parse_defense_params


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
    found = rec["detection"]
    if found["detected"] is not None:
        verdict = "backdoor found" if found["detected"] else "no backdoor found"
        evidence = (f": {found['statistic']} {found['value']:.2f} (threshold {found['threshold']:g}) at class "
                    f"{found['flagged_class']}" if "statistic" in found else "")
        lines.append(verdict + evidence)
    lines += [f"note: {n}" for n in rec["notes"]]
    return "\n".join(lines)


def add_defend_parser(sub: Any) -> None:
    p = sub.add_parser("defend", help="defend your own checkpoint with your own images",
                       description="Defend your own checkpoint with your own images: write the defended weights "
                       "and a JSON report.")
    p.add_argument("--model-file", type=Path, required=True,
                   help="state dict saved with torch.save(model.state_dict(), path), or a .safetensors file")
    p.add_argument("--arch", required=True, help=f"the model's architecture; one of: {', '.join(MODELS.names())}")
    p.add_argument("--dataset", required=True,
                   help="folder:PATH (one sub-folder of images per class), or a registered dataset")
    p.add_argument("--defense", default="agme",
                   help=f"one of: {', '.join(d for d in DEFENSES.names() if d != 'none')} (default: agme, the blind "
                        "edit: it recovers the trigger itself)")
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
    p.add_argument("--force", action="store_true",
                   help="write the defended model even where a blind defense finds no backdoor (default: only the "
                        "report is written then)")
    p.add_argument("--no-progress", action="store_true", help="hide progress bars")


def cmd_defend(args: argparse.Namespace) -> dict[str, Any]:
    params = parse_defense_params(args.defense, args.defense_param)
    rec = defend_checkpoint(args.model_file, args.arch, args.dataset, args.defense, args.unseen, out=args.out,
                            report=args.report, trigger_file=args.trigger_file, target=args.target,
                            image_size=args.image_size, seed=args.seed, device=args.device,
                            progress=False if args.no_progress else None, download=args.download, params=params,
                            force=args.force)
    print(format_report(rec))
    report = args.report or args.out.with_suffix(".json")
    print(f"wrote {args.out} and {report}" if rec["model_written"] else f"wrote {report} only (model unchanged)")
    return rec
