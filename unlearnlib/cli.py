"""``python -m unlearnlib run ...``: one attack, one defense, one seed -> a printed table and a JSON record.

``bench`` runs the grid (:mod:`unlearnlib.bench`); ``defend`` defends your own checkpoint (:mod:`unlearnlib.defend`).
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from .data import DatasetUnavailable
from .profiles import PROFILES
from .registry import ATTACKS, DATASETS
from .zoo import atomic_write_text

METRICS = ("acc", "asr", "target_acc", "ra", "asr_floor")


def format_record(rec: dict[str, Any]) -> str:
    """A short before/after table in percent."""
    lines = [f"{rec['dataset']} / {rec['attack']} / {rec['defense']} / seed {rec['seed']} "
             f"(target {rec['target']}, unseen {rec['unseen']}, {rec['defense_seconds']:.2f} s)",
             f"{'':8s}" + "".join(f"{m:>12s}" for m in METRICS)]
    for when in ("before", "after"):
        lines.append(f"{when:8s}" + "".join(f"{100 * rec[when][m]:11.2f}%" for m in METRICS))
    return "\n".join(lines)


def _parse_value(text: str, default: Any, key: str, owner: str, flag: str) -> Any:
    """``text`` typed like the constructor default ``default`` (bool, int, float, str; a comma list for tuples,
    and for a float default that may also be a per-channel tuple); ``None`` defaults keep the text (a layer name),
    except the words true / false / yes / no, which are booleans there too (``agme``'s ``augment=None`` means
    "decided by the recovery", and a user may still set it), and a JSON object ``{...}``, which is a dict there
    (``agme``'s ``recover_params={"gen_steps": 30}``)."""
    if default is None and text.lower() in ("true", "false", "yes", "no"):
        return text.lower() in ("true", "yes")
    if (default is None or isinstance(default, dict)) and text.startswith("{"):
        try:
            return json.loads(text)  # a text that opens with "{" and parses is an object
        except ValueError as exc:
            raise ValueError(f"{flag} {key}={text!r}: not a JSON object ({exc})") from None
    try:
        if isinstance(default, bool):
            if text.lower() not in ("true", "false", "1", "0", "yes", "no"):
                raise ValueError
            return text.lower() in ("true", "1", "yes")
        if isinstance(default, int):
            return int(text)
        if isinstance(default, float):
            return tuple(float(v) for v in text.split(",")) if "," in text else float(text)
        if isinstance(default, tuple):
            return tuple(type(default[0])(v) if default else float(v) for v in text.split(","))
    except ValueError:
        raise ValueError(f"{flag} {key}={text!r}: {owner}'s {key} expects a {type(default).__name__}, "
                         f"like {default!r}") from None
    if isinstance(default, str) and "," in text and key == "position":
        return tuple(int(v) for v in text.split(","))
    return text


def parse_params(valid: dict[str, Any], owner: str, pairs: Sequence[str] | None, flag: str) -> dict[str, Any]:
    """``["size=5", "position=random"]`` -> ``{"size": 5, "position": "random"}``, typed from ``valid`` (the
    constructor keywords and defaults of ``owner``, a registered attack or defense); an unknown key or a malformed
    pair raises naming ``flag`` and listing the valid keys. The constructor itself then validates the values."""
    out: dict[str, Any] = {}
    for pair in pairs or []:
        key, sep, text = pair.partition("=")
        key = key.strip()
        if not sep or not key:
            raise ValueError(f"{flag} must be KEY=VALUE, got {pair!r}")
        if key not in valid:
            raise ValueError(f"{flag} {key!r} is not a parameter of {owner}; valid keys: {', '.join(valid)}")
        out[key] = _parse_value(text.strip(), valid[key], key, owner, flag)
    return out


def param_pairs(params: dict[str, Any]) -> list[str]:
    """The inverse of :func:`parse_params`: ``{"epochs": 3, "recover_params": {"gen_steps": 5}}`` ->
    ``["epochs=3", 'recover_params={"gen_steps": 5}']``, the ``KEY=VALUE`` texts of ``--defense-param`` (tuples
    as comma lists, dicts as JSON objects)."""
    def text(v: Any) -> str:
        if isinstance(v, dict):
            return json.dumps(v, sort_keys=True)
        if isinstance(v, (tuple, list)):
            return ",".join(str(x) for x in v)
        return str(v)

    return [f"{k}={text(v)}" for k, v in params.items()]


def parse_attack_params(attack: str, pairs: Sequence[str] | None) -> dict[str, Any]:
    """``--attack-param`` pairs for a registered attack (:func:`parse_params`)."""
    import inspect

    sig = inspect.signature(ATTACKS.get(attack))
    valid = {k: p.default for k, p in sig.parameters.items()
             if k != "image_shape" and p.default is not inspect.Parameter.empty}
    return parse_params(valid, attack, pairs, "--attack-param")


def parse_defense_params(defense: str, pairs: Sequence[str] | None, flag: str = "--defense-param") -> dict[str, Any]:
    """``--defense-param`` pairs for a registered defense (:func:`parse_params`, keywords from
    :func:`~unlearnlib.defenses.base.settable_params`)."""
    from .defenses.base import settable_params

    return parse_params(settable_params(defense), defense, pairs, flag)


def _add_common(p: argparse.ArgumentParser) -> None:
    p.add_argument("--profile", default="quick", help=f"one of: {', '.join(PROFILES.names())}")
    p.add_argument("--dataset", default=None, help="overrides the profile's; one of: "
                   f"{', '.join(n for n in DATASETS.names() if n != 'folder')}, folder:PATH (your own images)")
    p.add_argument("--image-size", type=int, default=None, help="resize a folder:PATH dataset's images to N x N")
    p.add_argument("--download", action="store_true", default=None,
                   help="download a torchvision dataset if missing (the full profile does by default)")
    p.add_argument("--device", default="auto", help="auto (CUDA when present), cpu, cuda, cuda:N")
    p.add_argument("--target", type=int, default=None, help="target class (default: the profile's)")
    p.add_argument("--poison-ratio", type=float, default=None, help="fraction of the training set poisoned")
    p.add_argument("--no-progress", action="store_true", help="hide progress bars")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m unlearnlib", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    run = sub.add_parser("run", help="attack + defense for one seed")
    _add_common(run)
    run.add_argument("--attack", default="badnets", help=f"one of: {', '.join(ATTACKS.names())}")
    run.add_argument("--defense", default="none", help="a defense name; an unknown name lists the valid ones")
    run.add_argument("--attack-param", action="append", default=None, metavar="KEY=VALUE",
                     help="an attack constructor parameter, repeatable (e.g. size=5, position=random); typed from "
                          "the attack's signature, part of the model cache key")
    run.add_argument("--defense-param", action="append", default=None, metavar="KEY=VALUE",
                     help="a defense constructor parameter, repeatable (e.g. layers=auto, mu=3); typed from the "
                          "defense's signature, a dict as a JSON object (recover_params='{\"gen_steps\": 30}')")
    run.add_argument("--seed", type=int, default=0)
    run.add_argument("--unseen", type=int, default=None, help="defender samples used (default: the defense's)")
    run.add_argument("--known-target", action="store_true",
                     help="give the defense the attack's target instead of letting it search")
    run.add_argument("--out", type=Path, default=None, help="write the JSON record here")
    from .bench_cli import add_bench_parser
    from .defend import add_defend_parser

    add_bench_parser(sub, _add_common)
    add_defend_parser(sub)
    return parser


def cmd_run(args: argparse.Namespace) -> dict[str, Any]:
    from .defenses import get_defense  # registers the defenses
    from .experiment import make_scenario, run_defense

    defense_params = parse_defense_params(args.defense, args.defense_param)
    get_defense(args.defense, **defense_params)  # fail fast on an unknown name or a bad value, before any training
    attack_params = parse_attack_params(args.attack, args.attack_param)
    progress = False if args.no_progress else None
    sc = make_scenario(args.profile, args.attack, args.seed, dataset=args.dataset, target=args.target,
                       poison_ratio=args.poison_ratio, attack_params=attack_params, device=args.device,
                       progress=progress, download=args.download, image_size=args.image_size)
    rec = run_defense(sc, args.defense, args.unseen, target=sc.target if args.known_target else None,
                      device=args.device, progress=progress, **defense_params).record
    print(format_record(rec))
    if args.out is not None:
        atomic_write_text(args.out, json.dumps(rec, indent=2, default=float))
        print(f"wrote {args.out}")
    return rec


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        if args.command == "run":
            cmd_run(args)
        elif args.command == "defend":
            from .defend import cmd_defend

            cmd_defend(args)
        else:
            from .bench_cli import cmd_bench

            cmd_bench(args)
    except (ValueError, TypeError, DatasetUnavailable, OSError) as exc:  # OSError: an output that cannot be written
        print(f"error: {exc}", file=sys.stderr)
        return 2
    return 0
