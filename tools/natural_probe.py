"""Planted or natural? Per-class statistics of every search generator, for choosing a target rule on tuning grids.

On the clean and the backdoored model of each cell of a robustness grid, the target search's generators exactly as
the blind defenses train them (50 defender images, 10 held out; every (kind, size) of the search, all classes,
without the search's early stop), then, for every class c, statistics of its triggers on all defender images of the
other classes (``DRAWS`` draws each):

- ``score``: the search's own score (its rate on the held-out images), from which the search's decision follows;
- ``rate``: the rate on all defender images of the other classes;
- ``confidence``: the median probability of c over the stamped images that land in c;
- ``src_min``, ``src_cov``: the smallest per-source-class rate, and the share of source classes with rate >= 0.5
  (a planted trigger fires from every class; a natural one, a feature of c, from the classes that resemble c).

With ``--reference-epochs N`` the victim is instead a *reference* model per cell: the cell's architecture from the
registry, trained N epochs on the 50 defender images, each shifted by every offset of up to two pixels.
One JSON line per cell and victim (resumable). docs/decisions/0018-natural-triggers.md reports what was made of it.

    python tools/natural_probe.py --grid-seed 1 --cells 40 --out natural-g1.jsonl
    python tools/natural_probe.py --grid-seed 1 --cells 40 --out reference-g1.jsonl --reference-epochs 10
    python tools/natural_probe.py --out natural-g1.jsonl --summary
"""

from __future__ import annotations

import argparse
import inspect
import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import torch  # noqa: E402

from unlearnlib import logits, recover, sample_cells, spec_scenario  # noqa: E402
from unlearnlib.core.device import seed_everything  # noqa: E402
from unlearnlib.core.registry import MODELS  # noqa: E402
from unlearnlib.data import Data  # noqa: E402
from unlearnlib.evaluation.rule import PLANTED_ASR  # noqa: E402
from unlearnlib.ml.edit import DENSE_SHIFTS, shift_augment  # noqa: E402
from unlearnlib.ml.metrics import predict  # noqa: E402
from unlearnlib.ml.train import train  # noqa: E402
from unlearnlib.recovery.anomaly import anomaly_index  # noqa: E402
from unlearnlib.recovery.mesa import train_generators  # noqa: E402
from unlearnlib.recovery.target_search import (  # noqa: E402
    KINDS,
    MIN_SCORE,
    PATCH_SIZES,
    SEARCH_BATCH,
    SEARCH_LR,
    SEARCH_STEPS,
    kind_job,
    proxy_rates,
    variant_label,
    variants,
)

UNSEEN, DRAWS = 50, 4


def search_arguments() -> dict:
    """The generator arguments :func:`recover` hands to the target search, read from its own defaults (what the blind
    defenses pass), so that the probes train the search's generators exactly as the defenses do."""
    d = {k: p.default for k, p in inspect.signature(recover).parameters.items()}
    return {"hidden": d["hidden"], "alpha": d["gen_alpha"], "max_blend": d["max_blend"], "max_warp": d["max_warp"],
            "position_stride": d["position_stride"], "beta": d["betas"][0]}


def measure(model: torch.nn.Module, sc, victim: str, spec: dict) -> dict:  # noqa: ANN001 -- a tool
    defender = sc.defender(UNSEEN)
    train, held = defender.holdout_split(0.2, sc.seed, "defender")
    seed_everything(sc.seed)
    k = sc.split.num_classes
    out: dict = {"cell": spec["cell"], "model": spec["model"], "attack": spec["attack"], "victim": victim,
                 "target": spec["target"], "asr": sc.before["asr"] if victim == "backdoored" else None,
                 "variants": {}}
    gen_kw = search_arguments()
    beta = gen_kw.pop("beta")
    for kind, size in variants(KINDS, PATCH_SIZES):
        jobs = [kind_job(kind, size, c, sc.seed + c, beta) for c in range(k)]
        trained = train_generators(model, train.x, jobs, steps=SEARCH_STEPS, lr=SEARCH_LR, batch_size=SEARCH_BATCH,
                                   positions="adaptive", progress=False, **gen_kw)
        trigs = [t for t, _ in trained]
        stats: dict[str, list] = {"score": proxy_rates(model, trigs, held, list(range(k)))}
        for name in ("rate", "confidence", "src_min", "src_cov"):
            stats[name] = []
        for c, trig in enumerate(trigs):
            keep = defender.y != c
            x, ys = defender.x[keep].repeat(DRAWS, 1, 1, 1), defender.y[keep].repeat(DRAWS)
            stamped = trig.apply_fresh(x, torch.Generator().manual_seed(0)).detach()
            lg = logits(model, stamped).float()
            landed = lg.argmax(1) == c
            per = [float(landed[ys == s].float().mean()) for s in range(k) if s != c and (ys == s).any()]
            stats["rate"].append(float(landed.float().mean()))
            stats["confidence"].append(float(lg.softmax(1)[landed, c].median()) if landed.any() else 0.0)
            stats["src_min"].append(min(per))
            stats["src_cov"].append(sum(p >= 0.5 for p in per) / len(per))
        out["variants"][variant_label(kind, size)] = {n: [round(v, 4) for v in vs] for n, vs in stats.items()}
    return out


def decide(row: dict, ok=lambda v, c: True, pick: str = "first") -> tuple[int, bool]:  # noqa: ANN001
    """The search's decision from a row's scores (kinds in order, stop at the first outlier), with an extra test
    ``ok(variant_stats, c)`` on each outlier; ``pick="confidence"``: every kind's outliers, the most confident."""
    best, cands = None, []
    for v in row["variants"].values():
        a = anomaly_index(v["score"], 0.01).tolist()
        outl = [c for c in range(len(a)) if a[c] > 2 and v["score"][c] >= MIN_SCORE and ok(v, c)]
        if outl:
            c = max(outl, key=lambda c: a[c])
            if pick == "first":
                return c, True
            cands.append((v["confidence"][c], c))
        t = max(range(len(a)), key=lambda c: a[c])
        best = (t, a[t]) if best is None or a[t] > best[1] else best
    return (max(cands)[1], True) if cands else (best[0], False)


def summary(rows: list[dict]) -> None:
    """Per rule: clean models flagged, planted cells with the right class, and those also flagged."""
    clean = [r for r in rows if r["victim"] == "clean"]
    planted = [r for r in rows if r["victim"] == "backdoored" and r["asr"] >= PLANTED_ASR]
    rules = {"the search as it is": {}, "the outlier of highest confidence over all kinds": {"pick": "confidence"}}
    for tau in (0.9, 0.97, 0.99):
        rules[f"outlier needs confidence >= {tau}"] = {"ok": lambda v, c, t=tau: v["confidence"][c] >= t}
    rules["outlier needs src_cov >= 0.8"] = {"ok": lambda v, c: v["src_cov"][c] >= 0.8}
    rules["outlier needs src_min >= 0.3"] = {"ok": lambda v, c: v["src_min"][c] >= 0.3}
    print(f"| rule | clean flagged (of {len(clean)}) | right class (of {len(planted)}) | right and flagged |")
    print("|---|---:|---:|---:|")
    for name, kw in rules.items():
        found = [decide(r, **kw) for r in planted]
        right = [f for f, r in zip(found, planted) if f[0] == r["target"]]
        print(f"| {name} | {sum(decide(r, **kw)[1] for r in clean)} | {len(right)} | {sum(f[1] for f in right)} |")


def reference(spec: dict, sc, epochs: int) -> torch.nn.Module:  # noqa: ANN001 -- a tool
    """The cell's architecture from the registry, trained on its 50 defender images and their 25 shifted copies."""
    d = sc.defender(UNSEEN)
    torch.manual_seed(sc.seed)
    ref = MODELS.get(spec["model"])()
    return train(ref, Data(shift_augment(d.x, DENSE_SHIFTS), d.y.repeat(len(DENSE_SHIFTS))), epochs=epochs,
                 batch_size=64, lr=1e-3, seed=sc.seed, progress=False)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--grid-seed", type=int, default=1)
    ap.add_argument("--cells", type=int, default=40)
    ap.add_argument("--out", required=True)
    ap.add_argument("--reference-epochs", type=int, default=0, help="measure a reference model per cell instead")
    ap.add_argument("--summary", action="store_true", help="print the rules' table of the rows in --out")
    args = ap.parse_args()
    out = Path(args.out)
    rows = [json.loads(line) for line in out.read_text().splitlines()] if out.exists() else []
    if args.summary:
        return summary(rows)
    done = {(r["cell"], r["victim"]) for r in rows}
    for spec in sample_cells(args.cells, args.grid_seed):
        sc = spec_scenario(spec, progress=False)
        if args.reference_epochs:
            victims = (("reference", reference(spec, sc, args.reference_epochs)),) if (
                spec["cell"], "reference") not in done else ()
        else:
            victims = (("clean", sc.clean), ("backdoored", sc.backdoored))
        for victim, model in victims:
            if (spec["cell"], victim) not in done:
                row = measure(model, sc, victim, spec)
                if victim == "reference":
                    row["ref_acc"] = float((predict(model, sc.split.test.x) == sc.split.test.y).float().mean())
                with out.open("a") as f:
                    f.write(json.dumps(row) + "\n")
                print(spec["cell"], victim, flush=True)


if __name__ == "__main__":
    main()
