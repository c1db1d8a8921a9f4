"""``python -m unlearnlib export``: write a backdoored model and clean images the way a user of ``defend`` holds
them -- a checkpoint, an ImageFolder of images -- and the attack's trigger, to try ``defend`` on."""

from __future__ import annotations

import argparse
import shlex
from pathlib import Path
from typing import Any

from ..core.registry import ATTACKS, MODELS
from ..experiment.defend import export_scenario
from ..experiment.scenario import make_scenario
from .demo import warn_unplanted


def add_export_parser(sub: Any, add_common: Any) -> None:
    """The ``export`` subparser of :mod:`unlearnlib.cli`."""
    p = sub.add_parser("export", help="write a backdoored checkpoint and clean images for 'defend'",
                       description="Plant an attack (or load its model from the cache) and write what a user of "
                                   "'defend' holds: the backdoored model's weights, clean images in an ImageFolder "
                                   "layout, and the attack's trigger (trigger.pt).")
    add_common(p)
    p.add_argument("--attack", default="badnets", help=f"one of: {', '.join(ATTACKS.names())} (default: badnets)")
    p.add_argument("--seed", type=int, default=0, help="the seed of the data split and the models (default: 0)")
    p.add_argument("--format", default=".pt", help="the checkpoint's format: .pt or .safetensors (default: .pt)")
    p.add_argument("--out", type=Path, required=True, help="a new or empty folder to write into")


def cmd_export(args: argparse.Namespace) -> dict[str, Path]:
    """Write the scenario's checkpoint, images and trigger; print the ``defend`` command that takes them."""
    sc = make_scenario(args.profile, args.attack, args.seed, dataset=args.dataset, target=args.target,
                       poison_ratio=args.poison_ratio, device=args.device,
                       progress=False if args.no_progress else None, download=args.download,
                       image_size=args.image_size)
    warning = warn_unplanted(sc)
    if warning:
        print(warning)
    paths = export_scenario(sc, args.out, args.format)
    arch = next(n for n in MODELS.names() if n == sc.profile.model)
    for name, path in paths.items():
        print(f"wrote {name}: {path}")
    cmd = ["python", "-m", "unlearnlib", "defend", "--model-file", str(paths["model"]), "--arch", arch,
           "--dataset", f"folder:{paths['images']}", "--out", str(Path(args.out) / f"defended{args.format}")]
    print("defend it without the trigger:\n  " + shlex.join(cmd))
    print("or measure the real asr too: add --defense agme-bdk --trigger-file " + str(paths["trigger"])
          + f" --target {sc.target}")
    return paths
