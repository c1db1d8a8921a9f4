"""Can a defended model be pushed so the retuning attack does not bring the backdoor back? A tuning measurement
(seeds 0-2 x the five attacks) of steps applied after a defense, each with the defense's own clean samples:

- ``finetune``: plain fine-tuning (Adam, constant ``--lr``);
- ``path-aware:A``: path-aware fine-tuning away from the backdoored weights (:func:`unlearnlib.path_aware_finetune`,
  rho = A times the defended model's distance from the backdoored one);
- ``extrapolate:A``: the weights moved A times further along the path (theta + A (theta - theta_b)), then
  fine-tuned back toward accuracy (:func:`unlearnlib.extrapolate`).

Each row (one JSON line per seed, attack and defense): the defended model's asr, accuracy and retuned asr, the
clean and backdoored models' retuned asr, and per step its asr, acc, target_acc and retuned asr. Resumable (rows
already in ``--out`` are skipped). docs/decisions/0013-is-it-really-gone.md reports it.

    python tools/deeper.py --defenses agme-bdk agme --variants finetune path-aware:1 extrapolate:1 --out d.jsonl
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from unlearnlib import (  # noqa: E402
    extrapolate,
    make_scenario,
    path_aware_finetune,
    reactivation,
    references,
    run_defense,
    train,
)

ATTACKS = ("badnets", "blended", "trojannn", "imc", "wanet")


def step(name: str, run, sc, data, args):  # noqa: ANN001, ANN201 -- a tool, not the package
    kind, _, a = name.partition(":")
    kw = {"epochs": args.epochs, "lr": args.lr, "batch_size": args.batch_size, "seed": 0, "progress": False}
    if kind == "finetune":
        import copy
        return train(copy.deepcopy(run.model), data, schedule="constant", **kw)
    if kind == "path-aware":
        return path_aware_finetune(run.model, sc.backdoored, data, alpha=float(a), **kw)
    if kind == "extrapolate":
        return train(extrapolate(run.model, sc.backdoored, float(a)), data, schedule="constant", **kw)
    raise SystemExit(f"error: unknown variant {name!r}")


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--defenses", nargs="+", default=["agme-bdk", "agme", "baerase"])
    p.add_argument("--variants", nargs="+", required=True)
    p.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2])
    p.add_argument("--epochs", type=int, default=10)
    p.add_argument("--lr", type=float, default=3e-4)
    p.add_argument("--batch-size", type=int, default=16)
    p.add_argument("--out", type=Path, required=True)
    args = p.parse_args()
    done = {tuple(json.loads(line)[k] for k in ("seed", "attack", "defense"))
            for line in (args.out.read_text().splitlines() if args.out.exists() else [])}
    with args.out.open("a") as out:
        for seed in args.seeds:
            for attack in ATTACKS:
                sc = make_scenario("quick", attack, seed, progress=False)
                refs = references(sc)
                for d in args.defenses:
                    if (seed, attack, d) in done:
                        continue
                    run = run_defense(sc, d, progress=False)
                    data = sc.defender(run.record["unseen"])  # the defense's own samples
                    row = {"seed": seed, "attack": attack, "defense": d, "asr": run.record["after"]["asr"],
                           "acc": run.record["after"]["acc"], "acc_before": run.record["before"]["acc"],
                           "target_acc": run.record["after"]["target_acc"],
                           "target_acc_before": run.record["before"]["target_acc"],
                           "clean_retuned": refs["clean"][-1], "backdoored_retuned": refs["backdoored"][-1],
                           "retuned": reactivation(sc, run.model, refs=refs)["final"]["defended"]}
                    for v in args.variants:
                        m = step(v, run, sc, data, args)
                        met = sc.metrics(m)
                        row[v] = {"asr": met["asr"], "acc": met["acc"], "target_acc": met["target_acc"],
                                  "retuned": reactivation(sc, m, refs=refs)["final"]["defended"]}
                    print(json.dumps(row), file=out, flush=True)
                    print(seed, attack, d, {v: round(row[v]["retuned"], 3) for v in args.variants}, flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
