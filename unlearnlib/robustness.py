"""The held-out robustness grid (issue 9): does a defense still work on the settings a reader will try?

``python -m unlearnlib bench --grid robustness --cells 60 --out results/robustness`` draws ``cells`` scenarios
from ``numpy.random.default_rng(grid_seed)`` (:func:`sample_cells`) and runs every defense on every one through
the one grid runner (:func:`unlearnlib.bench.run_grid` with ``scenarios``): resumable, one progress bar. A cell
draws

- the target class (any class), the poison ratio from :data:`POISON_RATIOS`, the architecture from :data:`ARCHS`;
- the attack, uniformly from :data:`ATTACKS` (every registered attack, issue 11), and its trigger: BadNets (size
  3-5, white / checkerboard / random pattern, corner or random position), Blended (alpha uniform in [0.1, 0.3],
  noise or stripes pattern), TrojanNN (a square of size 4-6), IMC (a square of size 3-5) or WaNet (the paper's
  k = 4 control points, warp strength s uniform in [0.5, 1.0]) *[ours]*: the ranges bracket each attack's default
  in the ``quick`` profile;
- a seed from the held-out range ``SEED_BASE + i``: the tuning seeds 0-2 never appear.

Cell ``i`` depends on ``grid_seed`` and ``i`` only (draws are sequential), so a longer grid extends a shorter one
and its finished cells are reused. A defense succeeds on a cell (:func:`success`) when its asr is at most
:data:`ASR_MAX`, and it costs at most :data:`ACC_DROP_MAX` of accuracy and :data:`TARGET_ACC_DROP_MAX` of the
target class's accuracy against the undefended (attacked) model of the same cell. A cell counts as *planted*
when the attacked model's asr is at least :data:`PLANTED_ASR` before any defense: every cell is run and judged,
and the success rate is also given over the planted cells alone, because on a cell whose backdoor never took the
asr bound says little about the defense. Outputs in ``out``: ``robustness.csv`` (one row per cell x defense),
``robustness.md`` (per defense: success rate, median and worst of each metric; how many cells planted; the
success rate per architecture and per attack; for each ``<defense>+repair``, the target class and the asr after
unlearning and after the repair, :func:`repair_stages`; the worst cells) and ``robustness.png``
(:func:`unlearnlib.plots_bench.plot_robustness`).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from .attacks.base import PLANTED_ASR  # a cell's backdoor is planted when the undefended asr is at least this
from .recover.shared import RecoveryMemo
from .registry import DEFENSES
from .zoo import atomic_write_text

ARCHS = ("cnn", "lenet5", "mlp", "small-bn")
POISON_RATIOS = (0.01, 0.05, 0.10)
BADNETS_SIZES = (3, 4, 5)
BADNETS_PATTERNS = ("white", "checker", "random")
BADNETS_POSITIONS = ("corner", "random")
BLEND_ALPHA = (0.1, 0.3)  # uniform in this interval
BLEND_PATTERNS = ("noise", "stripes")
ATTACKS = ("badnets", "blended", "trojannn", "imc", "wanet")
TROJANNN_SIZES = (4, 5, 6)
IMC_SIZES = (3, 4, 5)
WANET_S = (0.5, 1.0)  # uniform in this interval
NUM_CLASSES = 10
SEED_BASE = 1000  # held-out seeds: SEED_BASE + cell index; no default was tuned on them
TUNING_SEEDS = (0, 1, 2)

ASR_MAX = 0.02  # success: asr after the defense at most 2%
ACC_DROP_MAX = 0.015  # ... clean accuracy at most 1.5 points below the undefended model's
TARGET_ACC_DROP_MAX = 0.03  # ... target-class accuracy at most 3 points below the undefended model's
BOUNDS = {"asr": ASR_MAX, "acc_drop": ACC_DROP_MAX, "target_acc_drop": TARGET_ACC_DROP_MAX}  # success's order
# rates are counts / n, computed in float32 (a count's rate is off by up to ~1e-7; two counts of n <= 10^5 images
# differ by >= 1e-5): a drop of exactly the bound passes (1e-9 did not: 99% -> 96% read 0.030000031)
_EPS = 1e-6
WORST_PER_DEFENSE = 3
RAISE_MIN = 0.01  # [ours] a repair "raised" the asr when it went up by more than one point (one test image in 100)


def sample_cells(cells: int = 60, grid_seed: int = 0) -> list[dict[str, Any]]:
    """``cells`` scenario specs (:func:`unlearnlib.bench.check_spec`) drawn from ``default_rng(grid_seed)``."""
    if isinstance(cells, bool) or not isinstance(cells, (int, np.integer)) or cells < 1:
        raise ValueError(f"cells must be an integer >= 1 (how many scenarios to draw), got {cells!r}")
    if isinstance(grid_seed, bool) or not isinstance(grid_seed, (int, np.integer)) or grid_seed < 0:
        raise ValueError(f"grid_seed must be an integer >= 0, got {grid_seed!r}")
    rng = np.random.default_rng(int(grid_seed))
    specs = []
    for i in range(int(cells)):
        seed = SEED_BASE + i
        target = int(rng.integers(NUM_CLASSES))
        ratio = float(POISON_RATIOS[rng.integers(len(POISON_RATIOS))])
        model = str(ARCHS[rng.integers(len(ARCHS))])
        attack = str(ATTACKS[rng.integers(len(ATTACKS))])
        params: dict[str, Any]
        if attack == "badnets":
            params = {"size": int(BADNETS_SIZES[rng.integers(len(BADNETS_SIZES))]),
                      "pattern": str(BADNETS_PATTERNS[rng.integers(len(BADNETS_PATTERNS))]),
                      "position": str(BADNETS_POSITIONS[rng.integers(len(BADNETS_POSITIONS))])}
        elif attack == "blended":
            params = {"alpha": round(float(rng.uniform(*BLEND_ALPHA)), 3),
                      "pattern": str(BLEND_PATTERNS[rng.integers(len(BLEND_PATTERNS))])}
        elif attack == "trojannn":
            params = {"size": int(TROJANNN_SIZES[rng.integers(len(TROJANNN_SIZES))])}
        elif attack == "imc":
            params = {"size": int(IMC_SIZES[rng.integers(len(IMC_SIZES))])}
        else:
            params = {"s": round(float(rng.uniform(*WANET_S)), 3)}
        params["seed"] = seed
        specs.append({"cell": f"g{int(grid_seed)}c{i:03d}", "attack": attack, "seed": seed, "model": model,
                      "target": target, "poison_ratio": ratio, "attack_params": params})
    return specs


def drops(df: pd.DataFrame) -> pd.DataFrame:
    """``df`` (:func:`unlearnlib.bench.cells_frame` rows) with ``acc_drop`` and ``target_acc_drop``: the
    undefended model's rate minus the defended one's (positive = lost)."""
    return df.assign(acc_drop=df["acc_before"] - df["acc"], target_acc_drop=df["target_acc_before"] - df["target_acc"])


def over_bound(metric: str, value: Any) -> Any:
    """Whether ``value`` (a fraction, or a Series of them) breaks ``metric``'s success bound (:data:`BOUNDS`);
    NaN breaks none. The one comparison behind :func:`success` and the failure-reason counts."""
    return value > BOUNDS[metric] + _EPS


def success(asr: float, acc_drop: float, target_acc_drop: float) -> bool:
    """The success criterion of the grid: asr <= :data:`ASR_MAX`, acc drop <= :data:`ACC_DROP_MAX` and target_acc
    drop <= :data:`TARGET_ACC_DROP_MAX` (fractions). A missing (NaN) metric -- a failed cell -- is no success."""
    vals = (asr, acc_drop, target_acc_drop)
    if any(v is None or not np.isfinite(v) for v in vals):
        return False
    return not any(over_bound(m, v) for m, v in zip(BOUNDS, vals))


def badness(asr: float, acc_drop: float, target_acc_drop: float) -> float:
    """How far a cell is from success: the largest of each metric over its bound (> 1: failed; NaN: inf)."""
    vals = np.array([asr / ASR_MAX, acc_drop / ACC_DROP_MAX, target_acc_drop / TARGET_ACC_DROP_MAX], dtype=float)
    return float("inf") if not np.isfinite(vals).all() else float(vals.max())


def judged(df: pd.DataFrame) -> pd.DataFrame:
    """:func:`drops` plus ``success``, ``badness`` (failed cells: no success, infinite badness) and ``planted``
    (the undefended asr is at least :data:`PLANTED_ASR`) per row."""
    d = drops(df)
    d["planted"] = pd.to_numeric(d["asr_before"], errors="coerce").fillna(0.0) >= PLANTED_ASR - _EPS
    ok = d["status"] == "ok"
    d["success"] = [bool(o) and success(a, b, c) for o, a, b, c in
                    zip(ok, d["asr"], d["acc_drop"], d["target_acc_drop"])]
    d["badness"] = [badness(a, b, c) if o else float("inf") for o, a, b, c in
                    zip(ok, d["asr"], d["acc_drop"], d["target_acc_drop"])]
    return d


def summarise(df: pd.DataFrame) -> pd.DataFrame:
    """Per defense (``none`` excluded): ``cells``, ``failed``, ``success_rate``, ``planted`` (cells whose backdoor
    was planted), ``success_rate_planted`` (over those; NaN if none) and the median and worst (max) of asr,
    acc_drop and target_acc_drop over the finished cells."""
    d = judged(df)
    rows = []
    for defense, sub in d[d["defense"] != "none"].groupby("defense", sort=False):
        ok = sub[sub["status"] == "ok"]
        row: dict[str, Any] = {"defense": defense, "cells": len(sub), "failed": int((sub["status"] != "ok").sum()),
                               "success_rate": float(sub["success"].mean()), "planted": int(sub["planted"].sum()),
                               "success_rate_planted": float(sub.loc[sub["planted"], "success"].mean())
                               if sub["planted"].any() else float("nan")}
        for m in ("asr", "acc_drop", "target_acc_drop"):
            row[f"{m}_median"] = float(ok[m].median()) if len(ok) else float("nan")
            row[f"{m}_worst"] = float(ok[m].max()) if len(ok) else float("nan")
        rows.append(row)
    order = {n: i for i, n in enumerate(DEFENSES.names())}
    return pd.DataFrame(rows).sort_values("defense", key=lambda c: c.map(lambda n: order.get(n, len(order))),
                                          kind="stable").reset_index(drop=True)


def success_by(df: pd.DataFrame, by: str) -> pd.DataFrame:
    """Success rate (fraction) per defense (rows, ``none`` excluded) and value of the column ``by`` (``"model"``
    or ``"attack"``; columns, with the number of cells of each)."""
    if by not in df.columns:
        raise ValueError(f"by must be a column of the grid's rows, such as 'model' or 'attack'; got {by!r}")
    d = judged(df)
    d = d[d["defense"] != "none"]
    table = d.pivot_table(index="defense", columns=by, values="success", aggfunc="mean", sort=False)
    n = d.groupby(by, sort=False)["cell"].nunique()
    order = {name: i for i, name in enumerate(DEFENSES.names())}
    table = table.loc[sorted(table.index, key=lambda name: order.get(name, len(order)))]
    return table.rename(columns=lambda c: f"{c} ({n[c]})")


def worst_cells(df: pd.DataFrame, k: int = WORST_PER_DEFENSE) -> pd.DataFrame:
    """The ``k`` cells furthest from success (:func:`badness`) per defense, failed cells first, successes left out."""
    d = judged(df)
    d = d[(d["defense"] != "none") & ~d["success"]]
    order = {n: i for i, n in enumerate(DEFENSES.names())}
    d = d.assign(_o=d["defense"].map(lambda n: order.get(n, len(order))))
    d = d.sort_values(["_o", "badness"], ascending=[True, False], kind="stable").drop(columns="_o")
    return d.groupby("defense", sort=False).head(k).reset_index(drop=True)


def repair_stages(df: pd.DataFrame) -> pd.DataFrame:
    """Per ``<defense>+repair`` of ``df`` (its finished cells, which record the model after unlearning): the
    target_acc drop and the asr after unlearning and after the repair (medians), the cells within the target bound
    at each stage, and the check that the repair never brings the backdoor back -- the cells whose asr it raised by
    more than :data:`RAISE_MIN`, those it pushed over :data:`ASR_MAX` (unlearning had left them within it), and the
    largest rise with its cell. Empty (same columns) when ``df`` holds no repaired defense."""
    cols = ["defense", "cells", "target_acc_drop_unlearned_median", "target_acc_drop_median",
            "target_ok_unlearned", "target_ok", "asr_unlearned_median", "asr_median", "raised", "pushed_over",
            "largest_rise", "largest_rise_cell"]
    d = drops(df)
    if "target_acc_unlearned" not in d:
        return pd.DataFrame(columns=cols)
    d = d[(d["status"] == "ok") & d["defense"].str.endswith("+repair") & d["target_acc_unlearned"].notna()]
    rows = []
    for defense, sub in d.groupby("defense", sort=False):
        t_un = sub["target_acc_before"] - sub["target_acc_unlearned"]
        rise = sub["asr"] - sub["asr_unlearned"]
        worst = rise.idxmax()
        rows.append({"defense": defense, "cells": len(sub), "target_acc_drop_unlearned_median": float(t_un.median()),
                     "target_acc_drop_median": float(sub["target_acc_drop"].median()),
                     "target_ok_unlearned": int((~over_bound("target_acc_drop", t_un)).sum()),
                     "target_ok": int((~over_bound("target_acc_drop", sub["target_acc_drop"])).sum()),
                     "asr_unlearned_median": float(sub["asr_unlearned"].median()),
                     "asr_median": float(sub["asr"].median()),
                     "raised": int((rise > RAISE_MIN + _EPS).sum()),
                     "pushed_over": int((~over_bound("asr", sub["asr_unlearned"])
                                         & over_bound("asr", sub["asr"])).sum()),
                     "largest_rise": float(rise[worst]), "largest_rise_cell": str(sub.loc[worst, "cell"])})
    order = {n: i for i, n in enumerate(DEFENSES.names())}
    out = pd.DataFrame(rows, columns=cols)
    return out.sort_values("defense", key=lambda c: c.map(lambda n: order.get(n, len(order))),
                           kind="stable").reset_index(drop=True)


def _pct(v: float) -> str:
    return "—" if pd.isna(v) else f"{100 * v:.1f}"


def _repair_markdown(df: pd.DataFrame) -> list[str]:
    """The lines of :func:`repair_stages` in :func:`to_markdown` (none when ``df`` has no ``+repair`` row)."""
    r = repair_stages(df)
    if r.empty:
        return []
    lines = ["", "The repair step (target_acc drop and asr after unlearning -> after the repair; the repair must never "
             f"bring the backdoor back: cells whose asr it raised by more than {100 * RAISE_MIN:g} point, and those it "
             f"pushed over {100 * ASR_MAX:g}%):", "",
             "| defense | cells | target_acc drop median (points) | cells within the target bound | asr % median | "
             "asr raised (cells) | pushed over the asr bound (cells) | largest rise (points) |",
             "|---|---:|---:|---:|---:|---:|---:|---|"]
    for _, x in r.iterrows():
        cols = [x["defense"], str(x["cells"]),
                f"{_pct(x['target_acc_drop_unlearned_median'])} -> {_pct(x['target_acc_drop_median'])}",
                f"{x['target_ok_unlearned']} -> {x['target_ok']}",
                f"{_pct(x['asr_unlearned_median'])} -> {_pct(x['asr_median'])}", str(x["raised"]),
                str(x["pushed_over"]), f"{_pct(x['largest_rise'])} ({x['largest_rise_cell']})"]
        lines.append("| " + " | ".join(cols) + " |")
    return lines


def to_markdown(df: pd.DataFrame) -> str:
    """The per-defense summary and the worst cells as markdown (rates and drops in percentage points)."""
    s = summarise(df)
    head = ["defense", "cells", "success %", "success % (planted)", "asr % median", "asr % worst",
            "acc drop (points) median", "acc drop (points) worst", "target_acc drop (points) median",
            "target_acc drop (points) worst"]
    lines = [f"Success: asr <= {100 * ASR_MAX:g}%, acc drop <= {100 * ACC_DROP_MAX:g} points, target_acc drop <= "
             f"{100 * TARGET_ACC_DROP_MAX:g} points vs the undefended model of the same cell.", "",
             "| " + " | ".join(head) + " |", "|---|" + "---:|" * (len(head) - 1)]
    for _, r in s.iterrows():
        cells = f"{r['cells']}" + (f" ({r['failed']} failed)" if r["failed"] else "")
        rates = (_pct(r["success_rate"]), _pct(r["success_rate_planted"]))
        lines.append("| " + " | ".join([r["defense"], cells, *rates, *(
            _pct(r[f"{m}_{q}"]) for m in ("asr", "acc_drop", "target_acc_drop") for q in ("median", "worst"))]) + " |")
    ref = judged(df).drop_duplicates("cell")
    unplanted = ref[~ref["planted"]]
    lines += ["", f"Planted (asr >= {100 * PLANTED_ASR:g}% before any defense): {int(ref['planted'].sum())} of "
              f"{len(ref)} cells" + ("; not planted: " + ", ".join(
                  f"{r['cell']} ({r['model']}, {r['attack']}, asr {_pct(r['asr_before'])}%)"
                  for _, r in unplanted.iterrows()) if len(unplanted) else "") + "."]
    for by, what in (("model", "architecture"), ("attack", "attack")):
        t = success_by(df, by)
        lines += ["", f"Success % per {what} (cells in brackets):", "",
                  "| defense | " + " | ".join(t.columns) + " |", "|---|" + "---:|" * len(t.columns)]
        lines += ["| " + " | ".join([name, *(_pct(v) for v in row)]) + " |" for name, row in t.iterrows()]
    lines += _repair_markdown(df)
    w = worst_cells(df)
    lines += ["", "Worst cells per defense (furthest from success):", "",
              "| defense | cell | model | attack | params | target | poison % | asr % before | asr % | "
              "acc drop | target_acc drop | error |", "|---|---|---|---|---|---:|---:|---:|---:|---:|---:|---|"]
    for _, r in w.iterrows():
        lines.append("| " + " | ".join(str(v) for v in (
            r["defense"], r["cell"], r["model"], r["attack"], r["attack_params"], r["target"],
            f"{100 * r['poison_ratio']:g}", _pct(r["asr_before"]), _pct(r["asr"]), _pct(r["acc_drop"]),
            _pct(r["target_acc_drop"]), "" if pd.isna(r["error"]) else str(r["error"]).split("\n")[0][:80])) + " |")
    return "\n".join(lines) + "\n"


def write_outputs(df: pd.DataFrame, out: str | Path) -> None:
    """``robustness.csv``, ``robustness.md`` and ``robustness.png``, each written atomically into ``out``."""
    from .plots_bench import save_robustness_plot

    out = Path(out)
    atomic_write_text(out / "robustness.csv", judged(df).to_csv(index=False))
    if (df["status"] == "ok").any():
        atomic_write_text(out / "robustness.md", to_markdown(df))
        save_robustness_plot(judged(df), out / "robustness.png")


def run_robustness(cells: int = 60, out: str | Path = "results/robustness", *, grid_seed: int = 0,
                   profile: str = "quick", defenses: Sequence[str] | None = None, device: str = "auto",
                   progress: bool | None = None, strict: bool = False, write: bool = True,
                   quiet: bool = False, params: Mapping[str, Mapping[str, Any]] | None = None,
                   unseen: int | None = None, shared: RecoveryMemo | None = None) -> pd.DataFrame:
    """Run (or resume) the robustness grid through :func:`unlearnlib.bench.run_grid`; return its rows with
    ``acc_drop``, ``target_acc_drop``, ``success`` and ``badness``. ``quiet``: no report of failed cells on
    stderr; ``params``: constructor arguments per defense, to judge a variant on the grid; ``unseen``: defender
    samples for every defense instead of each one's default; ``shared``: a
    :class:`~unlearnlib.recover.shared.RecoveryMemo` to share trigger recoveries with another call (all four:
    :func:`unlearnlib.bench.run_grid`)."""
    from .bench import run_grid

    specs = sample_cells(cells, grid_seed)
    df = run_grid(profile, None, defenses, out=out, progress=progress, device=device, strict=strict, write=False,
                  scenarios=specs, quiet=quiet, params=params, unseen=unseen, shared=shared)
    if write:
        write_outputs(df, out)
    return judged(df)
