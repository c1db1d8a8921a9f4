"""Plots of the grids: the comparison grid's summary (:func:`unlearnlib.evaluation.comparison.summarise`: what a
defense leaves vs what it costs), the scaling table and the robustness grid (:func:`plot_robustness`)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
from matplotlib.figure import Figure

from ..core.cache import atomic_write
from ..evaluation.rule import ACC_DROP_MAX, ASR_MAX, TARGET_ACC_DROP_MAX, wilson
from . import style
from .style import MARKERS

style.apply()


def _scatter(summary: pd.DataFrame, x: str, xlabel: str, ax: Any, log_x: bool) -> Any:
    if ax is None:
        _, ax = plt.subplots(figsize=style.figsize(3.6, 6.5))
    missing = {f"{x}_mean", "asr_mean", "asr_std", "attack", "defense"} - set(summary.columns)
    if missing:
        raise ValueError(f"summary must come from unlearnlib.evaluation.comparison.summarise; missing columns "
                         f"{sorted(missing)}")
    rows = (summary[summary["defense"] != "none"] if log_x else summary).dropna(subset=[f"{x}_mean", "asr_mean"])
    attacks = list(dict.fromkeys(rows["attack"]))
    defenses = list(dict.fromkeys(rows["defense"]))
    others = [d for d in dict.fromkeys(summary["defense"]) if d != "none"]
    colors = {d: style.defense_colour(d, others) for d in ["none", *others]}  # same colours in every plot
    for _, r in rows.iterrows():
        ax.errorbar(r[f"{x}_mean"], 100 * r["asr_mean"], yerr=0.0 if pd.isna(r["asr_std"]) else 100 * r["asr_std"],
                    fmt=MARKERS[attacks.index(r["attack"]) % len(MARKERS)], color=colors[r["defense"]],
                    capsize=2, markersize=6, alpha=0.85)
    if log_x:  # the undefended model has no wall time: a dashed line per attack instead of a point
        for _, r in summary[summary["defense"] == "none"].iterrows():
            ax.axhline(100 * r["asr_mean"], color="0.6", ls="--", lw=1)
    handles = [ax.plot([], [], "o", color=colors[d], label=d)[0] for d in defenses]
    handles += [ax.plot([], [], MARKERS[i % len(MARKERS)], color="0.4", label=a)[0] for i, a in enumerate(attacks)]
    ax.legend(handles=handles, loc="best", ncol=2)
    if log_x:
        ax.set_xscale("log")
    ax.set_xlabel(xlabel)
    ax.set_ylabel("attack success rate after the defense (%)")
    ax.set_ylim(-3, 103)
    ax.grid(alpha=0.3)
    return ax


def plot_asr_vs_seconds(summary: pd.DataFrame, ax: Any = None) -> Any:
    """ASR after each defense (mean ± std over seeds) against its wall time, log scale; one colour per defense."""
    ax = _scatter(summary, "defense_seconds", "defense wall time (s, log scale)", ax, log_x=True)
    ax.set_title("What a defense leaves vs what it costs")
    return ax


def plot_asr_vs_unseen(summary: pd.DataFrame, ax: Any = None) -> Any:
    """ASR after each defense against the number of unseen defender samples it used ('none' at 0)."""
    ax = _scatter(summary, "unseen", "defender samples used (unseen)", ax, log_x=False)
    ax.set_title("What a defense leaves vs the data it needs")
    return ax


def save_plots(summary: pd.DataFrame, out: Any) -> list[Any]:
    """Write ``asr_vs_seconds.png`` and ``asr_vs_unseen.png`` into ``out`` (atomically); return the paths."""
    paths = []
    for name, fn in (("asr_vs_seconds.png", plot_asr_vs_seconds), ("asr_vs_unseen.png", plot_asr_vs_unseen)):
        fig = Figure(figsize=(6.5, 4.2), layout="constrained")
        fn(summary, ax=fig.subplots())
        path = Path(out) / name
        atomic_write(path, lambda p, fig=fig: fig.savefig(p, format="png", dpi=120))
        paths.append(path)
    return paths


def plot_grid_heatmaps(summary: pd.DataFrame, axes: Any = None) -> Any:
    """The comparison grid's summary (:func:`unlearnlib.evaluation.comparison.summarise`) as two heat maps, attacks
    down and defenses across: the asr left after each defense (%) and what it cost in clean accuracy (points; the
    ``none`` column is the backdoored model: its asr, no cost). Every square reads its value."""
    if axes is None:
        _, axes = plt.subplots(2, 1, figsize=style.figsize(6.4), layout="constrained")
    missing = {"attack", "defense", "asr_mean", "acc_mean"} - set(summary.columns)
    if missing:
        raise ValueError(f"summary must come from unlearnlib.evaluation.comparison.summarise; missing columns "
                         f"{sorted(missing)}")
    defenses = list(dict.fromkeys(summary["defense"]))
    attacks = list(dict.fromkeys(summary["attack"]))
    base = summary[summary["defense"] == "none"].set_index("attack")["acc_mean"]
    cost = summary.assign(cost=100 * (summary["attack"].map(base) - summary["acc_mean"]))
    panels = ((summary.assign(v=100 * summary["asr_mean"]), "asr after the defense (%)", "magma_r", (0, 100)),
              (cost.assign(v=cost["cost"]), "clean accuracy lost (points)", "Blues", (0, 10)))
    for ax, (frame, title, cmap, (lo, hi)) in zip(axes, panels):
        grid = frame.pivot(index="attack", columns="defense", values="v").reindex(index=attacks, columns=defenses)
        im = ax.imshow(grid.to_numpy(dtype=float), cmap=cmap, vmin=lo, vmax=hi, aspect="auto")
        for i, a in enumerate(attacks):
            for j, d in enumerate(defenses):
                v = grid.loc[a, d]
                if pd.notna(v):
                    dark = (v - lo) / (hi - lo) > 0.55
                    ax.text(j, i, f"{v:.1f}", ha="center", va="center", fontsize=style.MIN_FONT_PT,
                            color="white" if dark else style.BLACK)
        ax.set_xticks(range(len(defenses)), defenses, rotation=30, ha="right")
        ax.set_yticks(range(len(attacks)), attacks)
        ax.set_title(title, fontsize=style.FONT_PT)
        ax.figure.colorbar(im, ax=ax, fraction=0.04)
    return axes


def plot_der(summary: pd.DataFrame, ax: Any = None) -> Any:
    """Defense effectiveness rating (BackdoorBench) per defense, one bar group per attack (mean ± std)."""
    if ax is None:
        _, ax = plt.subplots(figsize=style.figsize(3.2))
    rows = summary[summary["defense"] != "none"]
    attacks, defenses = list(dict.fromkeys(rows["attack"])), list(dict.fromkeys(rows["defense"]))
    width = 0.8 / max(1, len(attacks))
    for i, a in enumerate(attacks):
        sub = rows[rows["attack"] == a].set_index("defense").reindex(defenses)
        xs = [j + (i - (len(attacks) - 1) / 2) * width for j in range(len(defenses))]
        ax.bar(xs, 100 * sub["der_mean"], width, yerr=100 * sub["der_std"].fillna(0), capsize=2, label=a)
    ax.axhline(50, color="0.5", ls=":", lw=1)  # der = 50%: removed nothing, cost nothing
    ax.set_xticks(range(len(defenses)), defenses, rotation=20)
    ax.set_ylabel("der (%)")
    ax.set_ylim(0, 105)
    ax.legend()
    ax.set_title("Defense effectiveness rating (higher is better)")
    return ax


def plot_scaling(scaling: pd.DataFrame, machine: str, ax: Any = None) -> Any:
    """Seconds of each defense against the model's parameter count (log-log), one line per defense, from
    :func:`unlearnlib.evaluation.scaling.run_scaling`; the closed-form edits annotated with their solve (d, keys n,
    form). The title names the machine: these are timings of one CPU, not of the method."""
    if ax is None:
        _, ax = plt.subplots(figsize=(7, 3.8))
    ok = scaling[scaling["status"] == "ok"].sort_values("params")
    if ok.empty:
        raise ValueError("scaling has no finished (status 'ok') cells to plot")
    for i, (defense, sub) in enumerate(ok.groupby("defense", sort=False)):
        ax.plot(sub["params"], sub["seconds"], MARKERS[i % len(MARKERS)] + "-", label=defense)
        for _, r in sub.iterrows():
            note = r["model"] if not isinstance(r.get("layers"), str) else (
                f"{r['model']}: d={str(r['dims']).split()[0]}, n={str(r['keys']).split()[0]}, "
                f"{str(r['solve_forms']).split()[0]}")
            ax.annotate(note, (r["params"], r["seconds"]), fontsize=7, xytext=(4, 4), textcoords="offset points")
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlim(ok["params"].min() / 2, ok["params"].max() * 20)  # room for the labels on the right
    ax.set_xlabel("model parameters")
    ax.set_ylabel("defense wall time (s)")
    ax.grid(alpha=0.3, which="both")
    ax.legend(fontsize=8)
    ax.set_title(f"Measured on: {machine}", fontsize=9)
    return ax


def plot_robustness(judged: pd.DataFrame, axes: Any = None) -> Any:
    """The robustness grid (:func:`unlearnlib.evaluation.rule.judged` rows) per defense, in four panels: the success
    rate over the planted cells with its 95% Wilson interval, and one dot per planted cell of asr, acc drop and
    target_acc drop (the bar: the median; dotted: the fixed bound -- the asr bound is higher where the clean model's
    own rate is), so the median and the worst case read off each panel."""
    if axes is None:
        _, axes = plt.subplots(1, 4, figsize=style.figsize(3.4), sharey=True, layout="constrained")
    missing = {"defense", "status", "success", "planted", "asr", "acc_drop", "target_acc_drop"} - set(judged.columns)
    if missing:
        raise ValueError(f"judged must come from unlearnlib.evaluation.rule.judged; missing columns {sorted(missing)}")
    rows = judged[(judged["defense"] != "none") & judged["planted"]]
    defenses = list(dict.fromkeys(rows["defense"]))
    colors = {d: style.defense_colour(d, defenses) for d in defenses}
    ys = range(len(defenses))
    for y, d in zip(ys, defenses):
        ok = rows.loc[rows["defense"] == d, "success"]
        lo, hi = wilson(int(ok.sum()), len(ok))
        rate = 100 * ok.mean()
        axes[0].errorbar(rate, y, xerr=[[rate - 100 * lo], [100 * hi - rate]], fmt="o", color=colors[d], capsize=3)
        axes[0].annotate(f"{rate:.0f}%", (100 * hi, y), xytext=(3, 0), textcoords="offset points", va="center",
                         fontsize=style.MIN_FONT_PT)
    axes[0].set_xlim(0, 125)
    axes[0].set_xlabel("success (%)")
    axes[0].set_yticks(list(ys), defenses)
    axes[0].invert_yaxis()
    panels = (("asr", "asr (%)", ASR_MAX), ("acc_drop", "acc drop (pt)", ACC_DROP_MAX),
              ("target_acc_drop", "target drop (pt)", TARGET_ACC_DROP_MAX))
    for ax, (m, label, bound) in zip(axes[1:], panels):
        for y, d in zip(ys, defenses):
            v = 100 * rows.loc[(rows["defense"] == d) & (rows["status"] == "ok"), m].dropna()
            jitter = np.linspace(-0.25, 0.25, len(v)) if len(v) > 1 else np.zeros(len(v))
            ax.scatter(v, y + jitter, s=7, color=colors[d], alpha=0.5, linewidths=0)
            if len(v):
                ax.plot([v.median()] * 2, [y - 0.35, y + 0.35], color=style.BLACK, lw=1.5)
        ax.axvline(100 * bound, color=style.GREY, ls=":", lw=1)
        ax.set_xscale("symlog", linthresh=1.0)  # 0-1 linear, then log: small and catastrophic values both read
        lo = min(0.0, float(100 * rows[m].min())) if rows[m].notna().any() else 0.0
        ticks = [t for t in (-100, -10, -1, 0, 1, 10, 100) if lo - 1e-9 <= t or t == 0]
        ax.set_xticks(ticks, [f"{t:g}" for t in ticks])
        ax.set_xlabel(label)
        ax.grid(alpha=0.3, axis="x")
    n = rows["cell"].nunique() if "cell" in rows else len(rows) // max(1, len(defenses))
    axes[0].set_title(f"{n} planted cells", fontsize=style.MIN_FONT_PT, loc="left")
    return axes


def plot_success_heatmap(by: pd.DataFrame, column: str, ax: Any = None) -> Any:
    """Success over the planted cells per defense (rows) and value of ``column`` (``"attack"`` or ``"model"``;
    columns), from :func:`unlearnlib.evaluation.robustness.success_by`: the colour is the rate, each square reads
    ``successes/cells`` and the 95% interval."""
    if ax is None:
        _, ax = plt.subplots(figsize=style.figsize(0.45 * by["defense"].nunique() + 1.2), layout="constrained")
    defenses = list(dict.fromkeys(by["defense"]))
    values = list(dict.fromkeys(by[column]))
    grid = by.pivot(index="defense", columns=column, values="success_rate").reindex(index=defenses, columns=values)
    im = ax.imshow(100 * grid.to_numpy(dtype=float), cmap="viridis", vmin=0, vmax=100, aspect="auto")
    for _, r in by.iterrows():
        y, x = defenses.index(r["defense"]), values.index(r[column])
        colour = style.BLACK if r["success_rate"] > 0.6 else "white"
        ax.text(x, y, f"{r['successes']}/{r['n']}\n{100 * r['ci_low']:.0f}–{100 * r['ci_high']:.0f}%",
                ha="center", va="center", fontsize=style.MIN_FONT_PT, color=colour)
    ax.set_xticks(range(len(values)), values)
    ax.set_yticks(range(len(defenses)), defenses)
    ax.figure.colorbar(im, ax=ax, label="success (%)", fraction=0.04)
    return ax


def save_robustness_plot(judged: pd.DataFrame, path: Any) -> Any:
    """Write :func:`plot_robustness` to ``path`` (PNG, atomically); return the path."""
    fig = Figure(figsize=style.figsize(3.4), layout="constrained")
    plot_robustness(judged, axes=fig.subplots(1, 4, sharey=True))
    atomic_write(Path(path), lambda p: fig.savefig(p, format="png", dpi=120))
    return Path(path)
