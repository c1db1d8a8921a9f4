"""``python -m unlearnlib run``: one attack, one defense, one seed -> a printed table and a JSON record."""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

from ..core.cache import atomic_write_text
from ..core.registry import ATTACKS, DEFENSES
from ..defenses import get_defense
from ..display.text import format_record
from ..experiment.params import parse_attack_params, parse_defense_params
from ..experiment.runs import run_defense
from ..experiment.scenario import make_scenario
from .demo import warn_unplanted


def add_run_parser(sub: Any, add_common: Callable[[argparse.ArgumentParser], None]) -> None:
    """The ``run`` subparser of :mod:`unlearnlib.cli`."""
    run = sub.add_parser("run", help="attack + defense for one seed")
    add_common(run)
    run.add_argument("--attack", default="badnets", help=f"one of: {', '.join(ATTACKS.names())} (default: badnets)")
    run.add_argument("--defense", default="none", metavar="DEFENSE",
                     help=f"one of: {', '.join(DEFENSES.names())} (default: none, the backdoored model as it is)")
    run.add_argument("--attack-param", action="append", default=None, metavar="KEY=VALUE",
                     help="an attack constructor parameter, repeatable (e.g. size=5, position=random); typed from "
                          "the attack's signature, part of the model cache key")
    run.add_argument("--defense-param", action="append", default=None, metavar="KEY=VALUE",
                     help="a defense constructor parameter, repeatable (e.g. layers=auto, mu=3); typed from the "
                          "defense's signature, a dict as a JSON object (recover_params='{\"gen_steps\": 30}')")
    run.add_argument("--seed", type=int, default=0, help="the seed of the data split, the models and the defense "
                                                         "(default: 0)")
    run.add_argument("--unseen", type=int, default=None, help="defender samples used (default: the defense's own)")
    run.add_argument("--known-target", action="store_true",
                     help="give the defense the attack's target instead of letting it search")
    run.add_argument("--out", type=Path, default=None, help="write the JSON record here")


def cmd_run(args: argparse.Namespace) -> dict[str, Any]:
    """Plant the attack (or load its model), run the defense, print the before/after table, write the record."""
    defense_params = parse_defense_params(args.defense, args.defense_param)
    get_defense(args.defense, **defense_params)  # fail fast on an unknown name or a bad value, before any training
    attack_params = parse_attack_params(args.attack, args.attack_param)
    progress = False if args.no_progress else None
    sc = make_scenario(args.profile, args.attack, args.seed, dataset=args.dataset, target=args.target,
                       poison_ratio=args.poison_ratio, attack_params=attack_params, device=args.device,
                       progress=progress, download=args.download, image_size=args.image_size)
    warning = warn_unplanted(sc)
    if warning:
        print(warning, file=sys.stderr)
    rec = run_defense(sc, args.defense, args.unseen, target=sc.target if args.known_target else None,
                      device=args.device, progress=progress, **defense_params).record
    print(format_record(rec))
    if args.out is not None:
        atomic_write_text(args.out, json.dumps(rec, indent=2, default=float))
        print(f"wrote {args.out}")
    return rec
