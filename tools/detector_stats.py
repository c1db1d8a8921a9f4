"""Can the target search's own trigger tell a planted backdoor from a natural one? A tuning measurement for the
"no backdoor found" gate: on the clean and the backdoored model of each cell of a robustness grid, the target
search exactly as the blind defenses run it (50 defender images, 10 of them held out), then, for the generator of
the class it found, statistics of its triggers on all 50 defender images of the other classes (4 draws each):

- ``rate``: how often they land in the found class (the search's own score, on 5x the images);
- ``half_rate``: the same with the trigger blended in at half strength (x + 0.5 (T(x) - x));
- ``confidence``: the median probability of the found class over the images that do land there;
- ``margin``: the median logit margin (found class minus the best other) over those images.

One JSON line per cell and victim (resumable: rows already in ``--out`` are skipped); ``--summary`` prints, over
the clean models and the planted backdoored ones (the success rule's), each statistic's AUC with its bootstrap interval
and the gate's operating points (the search's outlier rule, then the rule and statistic >= threshold).
docs/decisions/0013-is-it-really-gone.md reports it.

    python tools/detector_stats.py --grid-seed 1 --cells 40 --out detector-g1.jsonl
    python tools/detector_stats.py --out detector-g1.jsonl --summary
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import torch  # noqa: E402

from unlearnlib import logits, predict, recover, sample_cells, spec_scenario  # noqa: E402
from unlearnlib.core.device import seed_everything  # noqa: E402
from unlearnlib.evaluation.detection import auc_interval  # noqa: E402
from unlearnlib.evaluation.rule import PLANTED_ASR  # noqa: E402

STATS = ("search_score", "rate", "half_rate", "confidence", "margin")
UNSEEN, DRAWS = 50, 4  # the blind edit's defender images; trigger draws per image


def measure(model: torch.nn.Module, sc, victim: str, spec: dict) -> dict:  # noqa: ANN001 -- a tool
    defender = sc.defender(UNSEEN)
    train, held = defender.holdout_split(0.2, sc.seed, "defender")
    seed_everything(sc.seed)
    res = recover(model, train, held, sc.split.num_classes, seed=sc.seed, progress=False).search  # as agme runs it
    t = res.target
    x = defender.x[defender.y != t].repeat(DRAWS, 1, 1, 1)
    stamped = res.generator.apply_fresh(x, torch.Generator().manual_seed(0)).detach()
    out = logits(model, stamped).float()
    other = out.clone()
    other[:, t] = float("-inf")
    margin = out[:, t] - other.max(1).values
    landed = margin > 0
    half = predict(model, x + 0.5 * (stamped - x))
    return {"cell": spec["cell"], "model": spec["model"], "attack": spec["attack"], "victim": victim,
            "target": spec["target"], "asr": sc.before["asr"] if victim == "backdoored" else None,
            "found": t, "kind": res.kind, "patch_size": res.patch_size, "outlier": res.outlier,
            "search_score": res.scores[t], "rate": float(landed.float().mean()),
            "half_rate": float((half == t).float().mean()),
            "confidence": float(out.softmax(1)[landed, t].median()) if landed.any() else 0.0,
            "margin": float(margin[landed].median()) if landed.any() else 0.0}


def summary(rows: list[dict]) -> None:
    clean = [r for r in rows if r["victim"] == "clean"]
    planted = [r for r in rows if r["victim"] == "backdoored" and r["asr"] >= PLANTED_ASR]
    print(f"{len(clean)} clean models, {len(planted)} planted backdoored models")
    print("| statistic | AUC (95% interval) |\n|---|---|")
    for s in STATS:
        auc, lo, hi = auc_interval([r[s] for r in planted], [r[s] for r in clean])
        print(f"| {s} | {auc:.2f} ({lo:.2f}-{hi:.2f}) |")
    print("\n| gate | clean models flagged | planted flagged | planted flagged, right class |\n|---|---:|---:|---:|")

    def point(name: str, keep) -> None:  # noqa: ANN001
        c, p = [r for r in clean if keep(r)], [r for r in planted if keep(r)]
        right = sum(r["found"] == r["target"] for r in p)
        print(f"| {name} | {len(c)}/{len(clean)} | {len(p)}/{len(planted)} | {right}/{len(planted)} |")

    point("outlier rule", lambda r: r["outlier"])
    for s in ("confidence", "margin", "half_rate"):
        for q in sorted({r[s] for r in clean if r["outlier"]})[-3:]:  # thresholds that leave the last clean ones
            point(f"outlier rule and {s} > {q:.3f}", lambda r, s=s, q=q: r["outlier"] and r[s] > q)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--grid-seed", type=int, default=1)
    ap.add_argument("--cells", type=int, default=40)
    ap.add_argument("--out", required=True)
    ap.add_argument("--summary", action="store_true", help="print the tables of the rows in --out")
    args = ap.parse_args()
    out = Path(args.out)
    rows = [json.loads(line) for line in out.read_text().splitlines()] if out.exists() else []
    if not args.summary:
        done = {(r["cell"], r["victim"]) for r in rows}
        for spec in sample_cells(args.cells, args.grid_seed):
            sc = spec_scenario(spec, progress=False)
            for victim, model in (("clean", sc.clean), ("backdoored", sc.backdoored)):
                if (spec["cell"], victim) not in done:
                    rows.append(measure(model, sc, victim, spec))
                    with out.open("a") as f:
                        f.write(json.dumps(rows[-1]) + "\n")
    summary(rows)


if __name__ == "__main__":
    main()
