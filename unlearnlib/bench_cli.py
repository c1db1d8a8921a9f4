"""The ``bench`` subcommand's command line: its parser, ``--defense-param`` parsing, and the dispatch to the
comparison grid (:mod:`unlearnlib.bench`), the robustness grid (:mod:`unlearnlib.robustness`), the scaling
benchmark (:mod:`unlearnlib.scaling`) and the layout benchmark (:mod:`unlearnlib.layout`).

``--unseen N`` hands every defense of a grid ``N`` defender samples instead of its own default: the one way to
ask whether a defense's failures come from having too few samples (``bench --grid robustness --unseen 200``).
"""

from __future__ import annotations

import argparse
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from .bench import GRIDS, run_grid, summarise, to_markdown
from .checks import check_positive_int
from .registry import ATTACKS
from .zoo import atomic_write_text


def add_bench_parser(sub: Any, add_common: Callable[[argparse.ArgumentParser], None]) -> None:
    """The ``bench`` subparser of :mod:`unlearnlib.cli`."""
    p = sub.add_parser("bench", help="the benchmark grid: attacks x defenses x seeds (resumable)")
    add_common(p)
    p.add_argument("--attacks", nargs="+", default=None, help=f"default: all of {', '.join(ATTACKS.names())}")
    p.add_argument("--defenses", nargs="+", default=None,
                   help="default: every registered defense except 'none' and the '+repair' compositions")
    p.add_argument("--seeds", nargs="+", type=int, default=None, help="default: 0 1 2 (comparison grid only)")
    p.add_argument("--grid", choices=GRIDS, default="comparison",
                   help="comparison: attacks x defenses x seeds (the default); robustness: --cells held-out scenarios "
                        "(random target, poison ratio, trigger, architecture, seeds 1000+) x every defense")
    p.add_argument("--cells", type=int, default=None, help="with --grid robustness: how many cells (default 60)")
    p.add_argument("--grid-seed", type=int, default=None, help="with --grid robustness: the sampler's seed (default 0)")
    p.add_argument("--defense-param", action="append", default=None, metavar="DEFENSE:KEY=VALUE",
                   help="a constructor parameter of one of the grid's defenses, repeatable (e.g. "
                        "agme-bdk:layers=auto); typed from its signature (a dict as a JSON object), part of each "
                        "cell's key")
    p.add_argument("--out", type=Path, default=Path("results"), help="output folder (cells/, grid.csv, grid.md, *.png)")
    p.add_argument("--known-target", action="store_true", help="give the defenses the attack's target")
    p.add_argument("--strict", action="store_true", help="stop at the first failing defense (re-raise its error)")
    p.add_argument("--scaling", action="store_true",
                   help="instead of the grid: seconds, peak memory and edit solve per defense and model size "
                        "(random weights; writes scaling.csv/.md to --out)")
    p.add_argument("--layout", action="store_true",
                   help="instead of the grid: milliseconds of a training step, a gradient to the input and a forward "
                        "with the weights in NCHW and in channels-last layout (writes layout.csv/.md to --out)")
    p.add_argument("--models", nargs="+", default=None,
                   help="with --scaling: models to time (default: cnn, preact-resnet18-w8, preact-resnet18); "
                        "with --layout: default cnn, preact-resnet18-w8")
    p.add_argument("--unseen", type=int, default=None,
                   help="defender samples given to every defense (default: each defense's own); part of each cell's "
                        "key. With --scaling: the samples to time with")


def parse_grid_params(pairs: Sequence[str] | None) -> dict[str, dict[str, Any]]:
    """``["agme-bdk:layers=auto", "agme-bdk:mu=3"]`` -> ``{"agme-bdk": {"layers": "auto", "mu": 3.0}}`` (each value
    typed from its defense's signature: :func:`unlearnlib.cli.parse_defense_params`)."""
    from .cli import parse_defense_params

    grouped: dict[str, list[str]] = {}
    for pair in pairs or []:
        name, sep, rest = pair.partition(":")
        if not sep or not name.strip() or "=" not in rest:
            raise ValueError(f"--defense-param must be DEFENSE:KEY=VALUE, got {pair!r}")
        grouped.setdefault(name.strip(), []).append(rest)
    return {name: parse_defense_params(name, kv, f"--defense-param {name}:") for name, kv in grouped.items()}


def _report(df: Any, markdown: str | None, out: Path, files: tuple[str, ...]) -> None:
    """Print a grid's table and the ``files`` written (the CSV first); exit with an error when any cell failed."""
    if markdown is not None:
        print(markdown)
    print(f"wrote {out}/{', '.join(files)} and {len(df)} cells")
    n_failed = int((df["status"] == "failed").sum())
    if n_failed:
        raise SystemExit(f"error: {n_failed} cell(s) failed; see the 'error' column of {out}/{files[0]}")


def cmd_robustness(args: argparse.Namespace) -> None:
    """``bench --grid robustness``: the held-out grid of :mod:`unlearnlib.robustness`."""
    from .robustness import run_robustness
    from .robustness import to_markdown as robustness_markdown

    given = {"--attacks": args.attacks, "--seeds": args.seeds, "--target": args.target,
             "--poison-ratio": args.poison_ratio, "--scaling": args.scaling or None, "--dataset": args.dataset,
             "--image-size": args.image_size, "--known-target": args.known_target or None}
    bad = [flag for flag, v in given.items() if v is not None]
    if bad:
        raise ValueError(f"{', '.join(bad)}: not valid with --grid robustness (each cell draws its own scenario; "
                         "use --cells, --grid-seed, --defenses, --defense-param, --unseen, --profile)")
    cells = 60 if args.cells is None else args.cells
    if cells < 1:
        raise ValueError(f"--cells must be an integer >= 1, got {cells}")
    df = run_robustness(cells, args.out, grid_seed=0 if args.grid_seed is None else args.grid_seed,
                        profile=args.profile, defenses=args.defenses, device=args.device,
                        progress=False if args.no_progress else None, strict=args.strict,
                        params=parse_grid_params(args.defense_param), unseen=args.unseen)
    _report(df, robustness_markdown(df) if (df["status"] == "ok").any() else None, args.out,
            ("robustness.csv", "robustness.md", "robustness.png"))


def cmd_bench(args: argparse.Namespace) -> None:
    """``python -m unlearnlib bench``: the layout or scaling benchmark, or one of the two grids."""
    if args.layout:
        from . import layout

        ldf = layout.run_layout(args.models, device=args.device)
        out = Path(args.out)
        out.mkdir(parents=True, exist_ok=True)
        atomic_write_text(out / "layout.csv", ldf.to_csv(index=False))
        atomic_write_text(out / "layout.md", layout.to_markdown(ldf))
        print(layout.to_markdown(ldf))
        print(f"wrote {out}/layout.csv and layout.md")
        return
    if args.unseen is not None:
        check_positive_int(args.unseen, "--unseen")
    if args.scaling:
        from . import scaling

        sdf = scaling.run_scaling(args.models, args.defenses, args.unseen, out=args.out, device=args.device,
                                  progress=False if args.no_progress else None)
        print(scaling.to_markdown(sdf))
        print(f"wrote {args.out}/scaling.csv and scaling.md")
        return
    if args.grid == "robustness":
        cmd_robustness(args)
        return
    for flag, value in (("--cells", args.cells), ("--grid-seed", args.grid_seed)):
        if value is not None:
            raise ValueError(f"{flag} applies only to --grid robustness (the comparison grid takes --attacks/--seeds)")
    df = run_grid(args.profile, args.attacks, args.defenses, args.seeds or [0, 1, 2], args.out,
                  False if args.no_progress else None, dataset=args.dataset, target=args.target,
                  poison_ratio=args.poison_ratio, known_target=args.known_target, device=args.device,
                  strict=args.strict, download=args.download, image_size=args.image_size,
                  params=parse_grid_params(args.defense_param), unseen=args.unseen)
    _report(df, to_markdown(summarise(df)) if (df["status"] == "ok").any() else None, args.out,
            ("grid.csv", "grid.md", "asr_vs_seconds.png", "asr_vs_unseen.png"))
