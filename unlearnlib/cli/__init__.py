"""Layer 9, the command line: ``python -m unlearnlib demo | run | bench | export | defend``, one module per command
(:mod:`.demo`, :mod:`.run`, :mod:`.bench`, :mod:`.export`, :mod:`.defend`). The only layer
that writes result files and plots; it may import every layer below it."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from ..core.registry import DATASETS
from ..core.version import __version__
from ..data import DatasetUnavailable
from ..experiment.profiles import PROFILES
from .bench import add_bench_parser, cmd_bench
from .defend import add_defend_parser, cmd_defend
from .demo import add_demo_parser, cmd_demo
from .export import add_export_parser, cmd_export
from .run import add_run_parser, cmd_run

DESCRIPTION = ("Backdoor attacks on image classifiers and the unlearning defenses that remove them. Start with "
               "'demo' (about a minute on a CPU). demo: plant a backdoor and remove it, explained; run: one attack "
               "and one defense on one seed; bench: the grids and benchmarks; export: a backdoored checkpoint and "
               "images to try 'defend' on; defend: defend your own checkpoint with your own images.")


def _add_common(p: argparse.ArgumentParser) -> None:
    p.add_argument("--profile", default="quick",
                   help=f"one of: {', '.join(PROFILES.names())} (quick: CPU, mnist5k, small CNN; full: GPU, "
                        "CIFAR-10, PreAct-ResNet18; smoke: a code test; default: quick)")
    p.add_argument("--dataset", default=None, help="overrides the profile's; one of: "
                   f"{', '.join(n for n in DATASETS.names() if n != 'folder')}, folder:PATH (your own images)")
    p.add_argument("--image-size", type=int, default=None, help="resize a folder:PATH dataset's images to N x N")
    p.add_argument("--download", action="store_true", default=None,
                   help="download a torchvision dataset if missing (the full profile does by default)")
    p.add_argument("--device", default="auto", help="auto (CUDA when present), cpu, cuda, cuda:N (default: auto)")
    p.add_argument("--target", type=int, default=None, help="target class (default: the profile's)")
    p.add_argument("--poison-ratio", type=float, default=None,
                   help="fraction of the training set poisoned (default: the profile's, 0.1)")
    p.add_argument("--no-progress", action="store_true", help="hide progress bars")


def build_parser() -> argparse.ArgumentParser:
    """The parser of every subcommand."""
    parser = argparse.ArgumentParser(prog="python -m unlearnlib", description=DESCRIPTION)
    parser.add_argument("--version", action="version", version=f"unlearnlib {__version__}")
    sub = parser.add_subparsers(dest="command", required=True)
    add_demo_parser(sub)
    add_run_parser(sub, _add_common)
    add_bench_parser(sub, _add_common)
    add_export_parser(sub, _add_common)
    add_defend_parser(sub)
    return parser


COMMANDS = {"demo": cmd_demo, "run": cmd_run, "bench": cmd_bench, "export": cmd_export, "defend": cmd_defend}


def main(argv: Sequence[str] | None = None) -> int:
    """Run one command; bad input is one ``error:`` line on stderr and exit code 2."""
    argv = sys.argv[1:] if argv is None else list(argv)
    args = build_parser().parse_args(argv)
    args.argv = argv  # the exact command, for a stored run's provenance
    try:
        COMMANDS[args.command](args)
    except (ValueError, TypeError, DatasetUnavailable, OSError) as exc:  # OSError: an output that cannot be written
        print(f"error: {exc}", file=sys.stderr)
        return 2
    return 0
