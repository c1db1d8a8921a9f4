"""``python -m unlearnlib bench``: the comparison grid (:mod:`unlearnlib.evaluation.grid`), the robustness grid
(:mod:`unlearnlib.evaluation.robustness`), the scaling benchmark (:mod:`unlearnlib.evaluation.scaling`) and the
channels-last benchmark (:mod:`unlearnlib.evaluation.channels_last`); the runners return tables, this command writes
them (CSV, markdown) and their plots into ``--out``, each file atomically.

``--unseen N`` hands every defense of a grid ``N`` defender samples instead of its own default: the one way to
ask whether a defense's failures come from having too few samples (``bench --grid robustness --unseen 200``).
``--victim clean`` runs the defenses on each cell's clean model (``clean.md``), ``--retune`` the retuning attack
after each defense (``reactivation.md``); either grid. Every grid run writes ``provenance.json`` beside its CSV.
"""

from __future__ import annotations

import argparse
import json
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pandas as pd

from ..core.cache import atomic_write_text
from ..core.checks import check_positive_int
from ..core.registry import ATTACKS, DEFENSES
from ..display.bench import save_plots, save_robustness_plot
from ..display.markdown import (
    clean_markdown,
    grid_markdown,
    layout_markdown,
    reactivation_markdown,
    robustness_markdown,
    scaling_markdown,
)
from ..evaluation.channels_last import run_layout
from ..evaluation.comparison import summarise
from ..evaluation.evidence import provenance, source_state, write_provenance
from ..evaluation.grid import GRIDS, VICTIMS, run_grid
from ..evaluation.reactivation import Retuning
from ..evaluation.robustness import DEFAULT_CELLS, run_robustness
from ..evaluation.scaling import machine, run_scaling
from ..experiment.params import parse_grid_params


def add_bench_parser(sub: Any, add_common: Callable[[argparse.ArgumentParser], None]) -> None:
    """The ``bench`` subparser of :mod:`unlearnlib.cli`."""
    p = sub.add_parser("bench", help="the benchmark grid: attacks x defenses x seeds (resumable)")
    add_common(p)
    p.add_argument("--attacks", nargs="+", default=None, help=f"default: all of {', '.join(ATTACKS.names())}")
    p.add_argument("--defenses", nargs="+", default=None,
                   help="default: every registered defense except 'none' and the '+repair' compositions; 'all': every "
                        "one, the compositions included")
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
    p.add_argument("--victim", choices=VICTIMS, default="backdoored",
                   help="the model each defense runs on: the cell's backdoored model (default) or its clean model "
                        "(was there a backdoor at all?)")
    p.add_argument("--retune", action="store_true",
                   help="after each defense, the retuning attack (200 defender images, 10 of them poisoned, 8 epochs "
                        "of Adam): is the backdoor really gone? Adds the retuned asr and reactivation gap")
    p.add_argument("--unseen", type=int, default=None,
                   help="defender samples given to every defense (default: each defense's own); part of each cell's "
                        "key. With --scaling: the samples to time with")


def every_defense() -> list[str]:
    """``--defenses all``: every registered defense, the ``+repair`` compositions included."""
    return [d for d in DEFENSES.names() if d != "none"]


def write_grid(df: pd.DataFrame, out: Path) -> tuple[str, ...]:
    """``grid.csv``, ``grid.md`` and the plots ``asr_vs_seconds.png`` / ``asr_vs_unseen.png`` of the comparison
    grid into ``out``; returns the names written."""
    atomic_write_text(out / "grid.csv", df.to_csv(index=False))
    if not (df["status"] == "ok").any():
        return ("grid.csv",)
    summary = summarise(df)
    atomic_write_text(out / "grid.md", grid_markdown(summary))
    return ("grid.csv", "grid.md", *(p.name for p in save_plots(summary, out)))


def write_robustness(df: pd.DataFrame, out: Path) -> tuple[str, ...]:
    """``robustness.csv``, ``robustness.md`` and ``robustness.png`` of the robustness grid's judged rows into
    ``out``; returns the names written."""
    atomic_write_text(out / "robustness.csv", df.to_csv(index=False))
    if not (df["status"] == "ok").any():
        return ("robustness.csv",)
    atomic_write_text(out / "robustness.md", robustness_markdown(df))
    save_robustness_plot(df, out / "robustness.png")
    return ("robustness.csv", "robustness.md", "robustness.png")


def write_studies(df: pd.DataFrame, out: Path, victim: str, retune: bool) -> tuple[str, ...]:
    """``clean.md`` (defenses on clean models) and ``reactivation.md`` (the retuning attack) where the run made
    them; returns the names written."""
    if not (df["status"] == "ok").any():
        return ()
    files = []
    if victim == "clean":
        atomic_write_text(out / "clean.md", clean_markdown(df))
        files.append("clean.md")
    if retune:
        atomic_write_text(out / "reactivation.md", reactivation_markdown(df))
        files.append("reactivation.md")
    return tuple(files)


def _report(df: pd.DataFrame, markdown: str | None, out: Path, files: tuple[str, ...]) -> None:
    """Print a grid's table and the ``files`` written (the CSV first); exit with an error when any cell failed."""
    if markdown is not None:
        print(markdown)
    print(f"wrote {out}/{', '.join(files)} and {len(df)} cells")
    n_failed = int((df["status"] == "failed").sum())
    if n_failed:
        raise SystemExit(f"error: {n_failed} cell(s) failed; see the 'error' column of {out}/{files[0]}")


def cmd_robustness(args: argparse.Namespace) -> None:
    """``bench --grid robustness``: the held-out grid of :mod:`unlearnlib.evaluation.robustness`."""
    given = {"--attacks": args.attacks, "--seeds": args.seeds, "--target": args.target,
             "--poison-ratio": args.poison_ratio, "--scaling": args.scaling or None, "--dataset": args.dataset,
             "--image-size": args.image_size, "--known-target": args.known_target or None}
    bad = [flag for flag, v in given.items() if v is not None]
    if bad:
        raise ValueError(f"{', '.join(bad)}: not valid with --grid robustness (each cell draws its own scenario; "
                         "use --cells, --grid-seed, --defenses, --defense-param, --unseen, --profile)")
    cells = DEFAULT_CELLS if args.cells is None else args.cells
    if cells < 1:
        raise ValueError(f"--cells must be an integer >= 1, got {cells}")
    grid_seed = 0 if args.grid_seed is None else args.grid_seed
    start, source = time.time(), source_state()
    retuning = Retuning() if args.retune else None
    df = run_robustness(cells, args.out, grid_seed=grid_seed, profile=args.profile, defenses=args.defenses,
                        device=args.device, progress=False if args.no_progress else None, strict=args.strict,
                        params=parse_grid_params(args.defense_param), unseen=args.unseen, victim=args.victim,
                        retuning=retuning)
    files = write_robustness(df, Path(args.out)) + write_studies(df, Path(args.out), args.victim, args.retune)
    prov = provenance(getattr(args, "argv", []), profile=args.profile, grid="robustness", table="robustness.csv",
                      grid_seed=grid_seed, cells=cells, defenses=sorted(set(df["defense"]) - {"none"}),
                      started=start, finished=time.time(), source=source, victim=args.victim, retuning=retuning)
    files += (write_provenance(args.out, prov).name,)
    _report(df, robustness_markdown(df) if (df["status"] == "ok").any() else None, args.out, files)


def cmd_bench(args: argparse.Namespace) -> None:
    """``python -m unlearnlib bench``: the layout or scaling benchmark, or one of the two grids."""
    out = Path(args.out)
    if args.defenses == ["all"]:
        args.defenses = every_defense()
    if args.layout:
        ldf = run_layout(args.models, device=args.device)
        atomic_write_text(out / "layout.csv", ldf.to_csv(index=False))
        atomic_write_text(out / "layout.md", layout_markdown(ldf))
        print(layout_markdown(ldf))
        print(f"wrote {out}/layout.csv and layout.md")
        return
    if args.unseen is not None:
        check_positive_int(args.unseen, "--unseen")
    if args.scaling:
        sdf = run_scaling(args.models, args.defenses, args.unseen, parse_grid_params(args.defense_param),
                          device=args.device, progress=False if args.no_progress else None)
        atomic_write_text(out / "scaling.csv", sdf.to_csv(index=False))
        atomic_write_text(out / "scaling.md", scaling_markdown(sdf))
        atomic_write_text(out / "machine.json", json.dumps({"machine": machine()}))
        print(scaling_markdown(sdf))
        print(f"wrote {out}/scaling.csv and scaling.md")
        return
    if args.grid == "robustness":
        cmd_robustness(args)
        return
    for flag, value in (("--cells", args.cells), ("--grid-seed", args.grid_seed)):
        if value is not None:
            raise ValueError(f"{flag} applies only to --grid robustness (the comparison grid takes --attacks/--seeds)")
    start, source = time.time(), source_state()
    retuning, seeds = (Retuning() if args.retune else None), args.seeds or [0, 1, 2]
    df = run_grid(args.profile, args.attacks, args.defenses, seeds, out,
                  False if args.no_progress else None, dataset=args.dataset, target=args.target,
                  poison_ratio=args.poison_ratio, known_target=args.known_target, device=args.device,
                  strict=args.strict, download=args.download, image_size=args.image_size,
                  params=parse_grid_params(args.defense_param), unseen=args.unseen, victim=args.victim,
                  retuning=retuning)
    files = write_grid(df, out) + write_studies(df, out, args.victim, args.retune)
    prov = provenance(getattr(args, "argv", []), profile=args.profile, grid="comparison", table="grid.csv",
                      cells=len(df[["attack", "seed"]].drop_duplicates()), seeds=seeds,
                      defenses=sorted(set(df["defense"]) - {"none"}), started=start, finished=time.time(),
                      source=source, victim=args.victim, retuning=retuning)
    files += (write_provenance(out, prov).name,)
    _report(df, grid_markdown(summarise(df)) if (df["status"] == "ok").any() else None, out, files)
