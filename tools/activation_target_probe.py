"""Recovery in activation space: can it name the target class, and can the blind edit use it? (record 0016)

For each planted cell of ``bench --grid robustness --grid-seed SEED`` (its first CELLS cells, the quick profile,
models from the cache) and the cell's clean model, at the input of the output layer (the features the last Linear
reads), on the defender's 50 unseen images:

- ``shift``: per class c, the least universal shift d of the features (L2, in units of the features' mean standard
  deviation) that sends >= 90% of the images of other classes to c (hinge on the logit margin + ||d||, 300 Adam
  steps); the named class has the smallest, its anomaly index is (median - smallest) / (1.4826 MAD);
- ``stimulation``: per class c, the smallest multiple m of a feature's largest clean value that, written into one
  feature of every image, sends >= 90% of the other classes' images to c (ABS, Liu et al. CCS 2019);
- ``pixel``: the class the blind edit (``agme``) names with its pixel-space search at this commit.

With ``--edit``, the target given instead: the least universal shift d (``--norm`` l2 or l1) at the input of the layer
the blind edit rewrites (through the rest of the network), used as the trigger of that edit (keys k + d -> values of
k, the nine shifted copies, ``agme``'s lam and mu), against ``agme`` with its pixel-space trigger and the same target.

Usage: ``python tools/activation_target_probe.py [--grid-seed 1] [--cells 40] [--edit [--norm l1]]`` (one line a
cell, then the counts).
"""

from __future__ import annotations

import argparse
import copy
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
import torch  # noqa: E402
from torch import nn  # noqa: E402

from unlearnlib import Scenario, run_defense, sample_cells, spec_scenario  # noqa: E402
from unlearnlib.core.device import default_threads  # noqa: E402
from unlearnlib.evaluation.rule import PLANTED_ASR  # noqa: E402
from unlearnlib.ml.edit import SHIFTS, default_edit_layer, layer_keys, ridge_solve, shift_augment, weight_matrix  # noqa: E402
from unlearnlib.models import get_layer  # noqa: E402

FLIP = 0.9  # the share of other classes' images a feature change must send to the class
MULTS = (1.0, 1.5, 2.0, 3.0, 4.0, 6.0, 8.0, 12.0, 16.0)


def _head(model: nn.Module) -> tuple[torch.Tensor, torch.Tensor, nn.Linear]:
    lin = [m for m in model.modules() if isinstance(m, nn.Linear)][-1]
    return lin.weight.detach(), lin.bias.detach(), lin


def shift_sizes(model: nn.Module, x: torch.Tensor, num_classes: int, steps: int = 300) -> np.ndarray:
    """Per class, the least universal L2 feature shift that sends FLIP of the other classes' images to it."""
    w, b, lin = _head(model)
    h = layer_keys(model, lin, x).detach()
    pred, scale = (h @ w.T + b).argmax(1), h.std(0).mean()
    out = []
    for c in range(num_classes):
        hc = h[pred != c]
        d = torch.zeros(h.shape[1], requires_grad=True)
        opt = torch.optim.Adam([d], lr=0.05 * float(scale))
        for _ in range(steps):
            z = (hc + d) @ w.T + b
            margin = z - z[:, c:c + 1]
            margin[:, c] = -1e9
            loss = 10 * torch.relu(margin.max(1).values + 0.1).mean() + d.norm() / scale / h.shape[1] ** 0.5
            opt.zero_grad()
            loss.backward()
            opt.step()
        with torch.no_grad():
            ok = float((((hc + d) @ w.T + b).argmax(1) == c).float().mean()) >= FLIP
            out.append(float(d.norm() / scale) if ok else np.inf)
    return np.array(out)


def stimulation_sizes(model: nn.Module, x: torch.Tensor, num_classes: int) -> np.ndarray:
    """Per class, the smallest multiple of one feature's largest clean value that sends FLIP of the rest to it."""
    w, b, lin = _head(model)
    h = layer_keys(model, lin, x).detach()
    pred, top = (h @ w.T + b).argmax(1), h.max(0).values.clamp_min(1e-6)
    best = np.full(num_classes, np.inf)
    for m in MULTS:
        for j in range(h.shape[1]):
            hj = h.clone()
            hj[:, j] = m * top[j]
            p = (hj @ w.T + b).argmax(1)
            for c in range(num_classes):
                other = pred != c
                if np.isinf(best[c]) and other.any() and float((p[other] == c).float().mean()) >= FLIP:
                    best[c] = m
    return best


def named(sizes: np.ndarray) -> tuple[int, float]:
    """The class with the smallest size and its anomaly index over the finite sizes (NaN where their MAD is 0)."""
    finite = sizes[np.isfinite(sizes)]
    c = int(np.argmin(sizes))
    mad = 1.4826 * np.median(np.abs(finite - np.median(finite))) if len(finite) >= 2 else 0.0
    return c, float((np.median(finite) - sizes[c]) / mad) if mad > 0 else float("nan")


def layer_shift(model: nn.Module, layer: nn.Module, x: torch.Tensor, target: int, norm: str,
                steps: int = 300) -> tuple[torch.Tensor, float]:
    """The least universal shift (``norm``) of ``layer``'s input that sends the images of other classes to
    ``target``, through the rest of the network (a forward pre-hook adds it), and the share of them it sends."""
    with torch.no_grad():
        xo = x[model(x).argmax(1) != target]
    k = layer_keys(model, layer, xo)
    scale = k.std(0).mean()
    d = torch.zeros(k.shape[1], requires_grad=True)
    handle = layer.register_forward_pre_hook(lambda _m, inputs: (inputs[0] + d,))
    opt = torch.optim.Adam([d], lr=0.05 * float(scale))
    try:
        for _ in range(steps):
            z = model(xo)
            margin = z - z[:, target:target + 1]
            margin[:, target] = -1e9
            size = d.abs().sum() if norm == "l1" else d.norm()
            loss = 10 * torch.relu(margin.max(1).values + 0.1).mean() + size / scale / k.shape[1] ** 0.5
            opt.zero_grad()
            loss.backward()
            opt.step()
        with torch.no_grad():
            sent = float((model(xo).argmax(1) == target).float().mean())
    finally:
        handle.remove()
    return d.detach(), sent


def shift_edit(sc: Scenario, x: torch.Tensor, norm: str, lam: float = 1.0, mu: float = 10.0) -> dict[str, float]:
    """The blind edit's layer rewritten with the activation-space shift as its trigger; the metrics after, and
    ``sent``: the share of the other classes' images the shift sends to the target."""
    model = copy.deepcopy(sc.backdoored).eval().requires_grad_(False)
    layer = get_layer(model, default_edit_layer(model, "last"))
    d, sent = layer_shift(model, layer, x, sc.target, norm)
    keys = layer_keys(model, layer, shift_augment(x, SHIFTS))
    w0 = weight_matrix(layer).clone()
    with torch.no_grad():
        layer.weight.copy_(ridge_solve(w0, keys + d, keys @ w0.T, keys, lam, mu).reshape(layer.weight.shape))
    return {**sc.metrics(model), "sent": sent}


def edit_main(args: argparse.Namespace) -> None:
    low = {"shift": 0, "pixel": 0}
    asr: dict[str, list[float]] = {"shift": [], "pixel": []}
    sent: list[float] = []
    for spec in sample_cells(args.cells, args.grid_seed):
        with default_threads(2):
            sc = spec_scenario(spec, "quick", progress=False)
            if sc.before["asr"] < PLANTED_ASR:
                continue
            x = sc.defender(50).x
            after = {"shift": shift_edit(sc, x, args.norm),
                     "pixel": run_defense(sc, "agme", target=sc.target, progress=False).record["after"]}
        sent.append(after["shift"]["sent"])
        line = f"{spec['cell']} {spec['model']:9s} {spec['attack']:9s} shift sends {after['shift']['sent']:.2f}"
        for name, m in after.items():
            low[name] += m["asr"] <= 0.02
            asr[name].append(m["asr"])
            line += (f" | {name}: asr {100 * m['asr']:5.1f}%, accuracy drop {100 * (sc.before['acc'] - m['acc']):.1f}, "
                     f"target class drop {100 * (sc.before['target_acc'] - m['target_acc']):.0f}")
        print(line, flush=True)
    print(f"the shift sends at least {min(sent):.2f} of the other classes' images to the target")
    print(f"planted cells: {len(asr['shift'])}; asr <= 2%: " + ", ".join(f"{n} {v}" for n, v in low.items()) +
          "; median asr: " + ", ".join(f"{n} {100 * np.median(v):.1f}%" for n, v in asr.items()))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--grid-seed", type=int, default=1)
    ap.add_argument("--cells", type=int, default=40)
    ap.add_argument("--edit", action="store_true", help="the edit with the activation-space trigger, target given")
    ap.add_argument("--norm", choices=("l2", "l1"), default="l2")
    args = ap.parse_args()
    if args.edit:
        edit_main(args)
        return
    rows = []
    for spec in sample_cells(args.cells, args.grid_seed):
        with default_threads(2):
            sc = spec_scenario(spec, "quick", progress=False)
            if sc.before["asr"] < PLANTED_ASR:
                continue
            x, k = sc.defender(50).x, sc.split.num_classes
            pixel = run_defense(sc, "agme", progress=False).record["info"]["recovered_target"]
            row = {"target": sc.target, "pixel": pixel}
            line = f"{spec['cell']} {spec['model']:9s} {spec['attack']:9s} target {sc.target} pixel {row['pixel']}"
            for name, fn in (("shift", shift_sizes), ("stimulation", stimulation_sizes)):
                sizes, clean = fn(sc.backdoored, x, k), fn(sc.clean, x, k)
                (row[name], row[f"{name}_index"]), (cc, row[f"{name}_clean_index"]) = named(sizes), named(clean)
                line += (f" | {name} {row[name]} (size {sizes.min():.2f}, index {row[f'{name}_index']:.1f}), "
                         f"clean model {cc} (size {clean.min():.2f}, index {row[f'{name}_clean_index']:.1f})")
        rows.append(row)
        print(line, flush=True)
    df = pd.DataFrame(rows)
    print(f"planted cells (asr >= {PLANTED_ASR:.0%}): {len(df)}; right class: " +
          ", ".join(f"{n} {int((df[n] == df['target']).sum())}" for n in ("pixel", "shift", "stimulation")))
    print(f"shift: anomaly index of the class named on the clean models, median "
          f"{df['shift_clean_index'].median():.1f}, largest {df['shift_clean_index'].max():.1f}")
    for bar in (2.0, 2.5, 3.0):  # the shift's class where its index reaches the bar, else the pixel search's
        ok, was = df["shift"].where(df["shift_index"] >= bar, df["pixel"]) == df["target"], df["pixel"] == df["target"]
        print(f"the shift overrides the pixel search at index >= {bar}: right class {int(ok.sum())} (gained "
              f"{int((ok & ~was).sum())}, lost {int((~ok & was).sum())})")

if __name__ == "__main__":
    main()
