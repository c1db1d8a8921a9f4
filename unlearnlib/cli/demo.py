"""``python -m unlearnlib demo``: plant a backdoor and remove it in about a minute on a CPU, with the numbers
explained -- the first thing to run."""

from __future__ import annotations

import argparse
import time
from typing import Any

from ..core.registry import ATTACKS, DEFENSES
from ..evaluation.rule import PLANTED_ASR
from ..experiment.runs import run_defense
from ..experiment.scenario import Scenario, make_scenario

ROWS = (("acc", "clean accuracy"), ("asr", "attack success rate"), ("target_acc", "target-class accuracy"),
        ("ra", "robust accuracy"))
GLOSSARY = """\
clean accuracy         test images classified correctly
attack success rate    test images of the other classes sent to the target class once the trigger is applied
target-class accuracy  the target class's own test images classified correctly (unlearning can take them too)
robust accuracy        triggered test images of the other classes still classified as their true class"""


def add_demo_parser(sub: Any, add_common: Any = None) -> None:
    """The ``demo`` subparser of :mod:`unlearnlib.cli`."""
    p = sub.add_parser("demo", help="plant a backdoor and remove it, in about a minute on a CPU",
                       description="Plant a backdoor in a small CNN on 5,000 MNIST digits (no download), remove "
                                   "it with a defense, and print what changed, with the metrics explained.")
    p.add_argument("--attack", default="badnets", help=f"one of: {', '.join(ATTACKS.names())} (default: badnets)")
    p.add_argument("--defense", default="agme-bdk",
                   help=f"one of: {', '.join(d for d in DEFENSES.names() if d != 'none')} (default: agme-bdk, the "
                        "closed-form edit given the trigger)")
    p.add_argument("--seed", type=int, default=0, help="the seed of the data split, the models and the defense "
                                                       "(default: 0)")
    p.add_argument("--no-progress", action="store_true", help="hide progress bars")


def warn_unplanted(sc: Scenario) -> str | None:
    """A warning when the attack did not plant (asr below the success rule's ``PLANTED_ASR``): a defense's numbers
    on such a model say little about removing a backdoor. None when it planted."""
    asr = sc.before["asr"]
    if asr >= PLANTED_ASR:
        return None
    return (f"warning: the {sc.attack} backdoor did not plant (asr {100 * asr:.1f}% < {100 * PLANTED_ASR:g}%): "
            "a defense has little to remove here; try another trigger or poison ratio")


def cmd_demo(args: argparse.Namespace) -> dict[str, Any]:
    """Train (or load) the clean and backdoored models, run the defense, print a labelled table."""
    progress = False if args.no_progress else None
    start = time.perf_counter()
    print(f"Planting a {args.attack} backdoor in the small CNN on mnist5k (5,000 real MNIST digits, no download), "
          f"then removing it with {args.defense}...")
    sc = make_scenario("quick", args.attack, args.seed, progress=progress)
    warning = warn_unplanted(sc)
    if warning:
        print(warning)
    rec = run_defense(sc, args.defense, progress=progress).record
    cells = [("", "backdoored model", f"after {args.defense}")]
    cells += [(label, f"{100 * rec['before'][k]:.1f}%", f"{100 * rec['after'][k]:.1f}%") for k, label in ROWS]
    width = [max(len(r[i]) for r in cells) for i in range(3)]
    print()
    for r in cells:
        print(f"{r[0]:<{width[0]}}   {r[1]:>{width[1]}}   {r[2]:>{width[2]}}")
    print(f"\ntarget class {rec['target']}; {rec['unseen']} clean images given to the defense; it took "
          f"{rec['defense_seconds']:.2f} s (everything: {time.perf_counter() - start:.0f} s). A model trained "
          f"without poison sends {100 * rec['before']['asr_floor']:.1f}% of triggered images to the target on its "
          "own.\n")
    print(GLOSSARY)
    return rec
