"""The target search alone, as the blind edit runs it (50 defender images, 10 held out), on the clean and the
backdoored model of each cell of a robustness grid: the baseline of docs/decisions/0018-natural-triggers.md (its
``--reference`` rows need this tool at commit 9c4b374). One JSON line per cell and victim (resumable); a summary.

    python tools/search_probe.py --grid-seed 1 --cells 40 --out search-g1.jsonl
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from natural_probe import search_arguments  # noqa: E402 -- tools/natural_probe.py

from unlearnlib import sample_cells, spec_scenario  # noqa: E402
from unlearnlib.core.device import seed_everything  # noqa: E402
from unlearnlib.evaluation.rule import PLANTED_ASR  # noqa: E402
from unlearnlib.recovery.target_search import search_target  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--grid-seed", type=int, default=1)
    ap.add_argument("--cells", type=int, default=40)
    ap.add_argument("--out", type=Path, required=True)
    ap.add_argument("--victims", nargs="+", default=["clean", "backdoored"], choices=["clean", "backdoored"])
    args = ap.parse_args()
    rows = [json.loads(line) for line in args.out.read_text().splitlines()] if args.out.exists() else []
    done = {(r["cell"], r["victim"]) for r in rows}
    for spec in sample_cells(args.cells, args.grid_seed):
        sc = spec_scenario(spec, progress=False)
        for victim in args.victims:
            if (spec["cell"], victim) in done:
                continue
            model = sc.clean if victim == "clean" else sc.backdoored
            train, held = sc.defender(50).holdout_split(0.2, sc.seed, "defender")
            seed_everything(sc.seed)
            r = search_target(model, train, held, sc.split.num_classes, seed=sc.seed, progress=False,
                              **search_arguments())
            rows.append({"cell": spec["cell"], "model": spec["model"], "attack": spec["attack"], "victim": victim,
                         "target": spec["target"], "asr": sc.before["asr"] if victim == "backdoored" else None,
                         "found": r.target, "outlier": r.outlier, "kind": r.kind, "seconds": r.seconds})
            with args.out.open("a") as f:
                f.write(json.dumps(rows[-1]) + "\n")
    clean = [r for r in rows if r["victim"] == "clean"]
    planted = [r for r in rows if r["victim"] == "backdoored" and r["asr"] >= PLANTED_ASR]
    print(f"clean models flagged {sum(r['outlier'] for r in clean)}/{len(clean)}; planted: right class "
          f"{sum(r['found'] == r['target'] for r in planted)}/{len(planted)}")


if __name__ == "__main__":
    main()
