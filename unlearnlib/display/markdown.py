"""The grids' results as markdown tables, for a terminal, a notebook or a results folder: the comparison grid's
summary (:func:`grid_markdown`) and the robustness grid's (:func:`robustness_markdown`). Rates and drops in
percent (points); every header names its unit."""

from __future__ import annotations

import pandas as pd

from ..evaluation import robustness as rb
from ..evaluation.comparison import RATES, SUMMARY
from ..evaluation.detection import clean_summary
from ..evaluation.reactivation import summarise_reactivation
from ..evaluation.rule import (
    ACC_DROP_MAX,
    ASR_MAX,
    FLOOR_MARGIN,
    PLANTED_ASR,
    RAISE_MIN,
    TARGET_ACC_DROP_MAX,
    TARGET_ALPHA,
    judged,
)
from ..evaluation.scaling import machine
from . import style
from .gone import clean_table, reactivation_table


def grid_markdown(summary: pd.DataFrame) -> str:
    """The summary as a markdown table: rates (and der) in percent, ``mean ± std`` over ``n`` seeds, each
    header with its unit (:data:`.style.HEADERS`)."""

    def cell(r: pd.Series, m: str) -> str:
        scale, fmt = (100, ".1f") if m in RATES else (1, ".2f" if m == "defense_seconds" else ".0f")
        mean, std = r[f"{m}_mean"] * scale, r[f"{m}_std"] * scale
        if pd.isna(mean):
            return "—"
        return f"{mean:{fmt}}" + ("" if pd.isna(std) else f" ± {std:{fmt}}")

    head = ["attack", "defense", *(style.header(m) for m in SUMMARY), style.header("seeds")]
    lines = ["| " + " | ".join(head) + " |", "|" + "|".join(["---"] * 2 + ["---:"] * (len(head) - 2)) + "|"]
    for _, r in summary.iterrows():
        fail = f" ({int(r['failed'])} failed)" if r.get("failed", 0) else ""
        lines.append("| " + " | ".join([r["attack"], r["defense"], *(cell(r, m) for m in SUMMARY),
                                       f"{int(r['n'])}{fail}"]) + " |")
    return "\n".join(lines) + "\n"


def _pct(v: float) -> str:
    return "—" if pd.isna(v) else f"{100 * v:.1f}"


def _repair_markdown(df: pd.DataFrame) -> list[str]:
    """The lines of :func:`repair_stages` in :func:`to_markdown` (none when ``df`` has no ``+repair`` row)."""
    r = rb.repair_stages(df)
    if r.empty:
        return []
    lines = ["", "The repair step (target_acc drop and asr after unlearning -> after the repair; the repair must never "
             f"bring the backdoor back: cells whose asr it raised by more than {100 * RAISE_MIN:g} point, and those "
             f"it pushed over the asr bound):", "",
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


def _right(r: pd.Series) -> str:
    """``right / planted`` with its percentage, or a dash for a defense that names no target."""
    if pd.isna(r["right_target"]):
        return "—"
    return f"{int(r['right_target'])}/{r['planted']} ({_pct(r['right_target'] / r['planted'])})"


def robustness_markdown(df: pd.DataFrame) -> str:
    """The per-defense summary (success over the planted cells with its 95% interval), success per architecture and
    per attack, the repair stages and the worst cells, as markdown (rates and drops in percent and points)."""
    s = rb.summarise(df)
    head = ["defense", "planted cells", "successes", "success %", "95% interval %", "right target (planted)",
            "unplanted unharmed %",
            "asr % median", "asr % worst", "acc drop (points) median", "acc drop (points) worst",
            "target_acc drop (points) median", "target_acc drop (points) worst"]
    lines = [f"Success on a planted cell (asr >= {100 * PLANTED_ASR:g}% before any defense), against the undefended "
             f"model of the same cell: asr <= max({100 * ASR_MAX:g}%, the clean model's rate + "
             f"{100 * FLOOR_MARGIN:g} point), acc drop <= {100 * ACC_DROP_MAX:g} points, and no target_acc drop over "
             f"{100 * TARGET_ACC_DROP_MAX:g} points that the one-sided exact McNemar test finds at p < "
             f"{TARGET_ALPHA:g}. On unplanted cells, the two accuracy bounds alone.", "",
             "| " + " | ".join(head) + " |", "|---|" + "---:|" * (len(head) - 1)]
    for _, r in s.iterrows():
        fails = f" ({r['failed']} failed)" if r["failed"] else ""
        interval = "—" if pd.isna(r["ci_low"]) else f"{_pct(r['ci_low'])}–{_pct(r['ci_high'])}"
        lines.append("| " + " | ".join([r["defense"], f"{r['planted']}{fails}", str(r["successes"]),
                                       _pct(r["success_rate"]), interval, _right(r), _pct(r["harmless_rate"]), *(
            _pct(r[f"{m}_{q}"]) for m in ("asr", "acc_drop", "target_acc_drop") for q in ("median", "worst"))]) + " |")
    ref = judged(df).drop_duplicates("cell")
    lines += ["", f"Planted: {int(ref['planted'].sum())} of {len(ref)} cells."]
    for by, what in (("model", "architecture"), ("attack", "attack")):
        t = rb.success_by(df, by)
        lines += ["", f"Success % per {what} over its planted cells (successes / cells, 95% interval):", "",
                  f"| defense | {by} | successes | cells | success % | 95% interval % |",
                  "|---|---|---:|---:|---:|---|"]
        lines += [f"| {r['defense']} | {r[by]} | {r['successes']} | {r['n']} | {_pct(r['success_rate'])} | "
                  f"{_pct(r['ci_low'])}–{_pct(r['ci_high'])} |" for _, r in t.iterrows()]
    lines += _repair_markdown(df)
    w = rb.worst_cells(df)
    lines += ["", "Worst cells per defense (furthest from success):", "",
              "| defense | cell | model | attack | params | target | poison % | asr % before | asr % | "
              "acc drop | target_acc drop | error |", "|---|---|---|---|---|---:|---:|---:|---:|---:|---:|---|"]
    for _, r in w.iterrows():
        lines.append("| " + " | ".join(str(v) for v in (
            r["defense"], r["cell"], r["model"], r["attack"], r["attack_params"], r["target"],
            f"{100 * r['poison_ratio']:g}", _pct(r["asr_before"]), _pct(r["asr"]), _pct(r["acc_drop"]),
            _pct(r["target_acc_drop"]), "" if pd.isna(r["error"]) else str(r["error"]).split("\n")[0][:80])) + " |")
    return "\n".join(lines) + "\n"


def scaling_markdown(df: pd.DataFrame) -> str:
    """The table with the machine it was measured on."""
    lines = [f"Measured on: {machine()}; peak MiB: {', '.join(sorted(set(df['mem_method'].dropna())))}", "",
             "| model | parameters (count) | input | defense | unseen (images) | threads (count) | seconds (s) | "
             "peak memory (MiB) | edit time (s) | solve time (s) | edited layers (d, keys n, form) |",
             "|---|---:|---|---|---:|---:|---:|---:|---:|---:|---|"]
    for _, r in df.iterrows():
        if r["status"] != "ok":
            lines.append(f"| {r['model']} | | {r['input']} | {r['defense']} | {r['unseen']} | failed: "
                         f"{r['error']} | | | | | |")
            continue
        edit = "—"
        if isinstance(r["layers"], str):
            edit = ", ".join(f"{lay} ({dim}, {k}, {f})" for lay, dim, k, f in zip(
                r["layers"].split(), str(r["dims"]).split(), str(r["keys"]).split(), str(r["solve_forms"]).split()))
        num = (lambda v, f: "—" if pd.isna(v) else format(v, f))
        lines.append(f"| {r['model']} | {int(r['params']):,} | {r['input']} | {r['defense']} | {r['unseen']} | "
                     f"{int(r['threads'])} | {r['seconds']:.2f} | {r['peak_mib']:.0f} | "
                     f"{num(r['edit_seconds'], '.3f')} | {num(r['solve_seconds'], '.3f')} | {edit} |")
    return "\n".join(lines) + "\n"


def layout_markdown(df: pd.DataFrame) -> str:
    """The table (units in the headers) with the machine and thread count it was measured on."""
    where = f"Measured on: {df['machine'].iloc[0]}, {df['threads'].iloc[0]} threads" if len(df) else "No rows"
    lines = [where, "", "| model | input | operation | batch (images) | NCHW (ms) | channels-last (ms) | speedup (×) |",
             "|---|---|---|---:|---:|---:|---:|"]
    lines += [f"| {r.model} | {r.input} | {r.op} | {r.batch} | {r.nchw_ms:.2f} | {r.nhwc_ms:.2f} | {r.speedup:.2f} |"
              for r in df.itertuples()]
    return "\n".join(lines) + "\n"


def frame_markdown(df: pd.DataFrame) -> str:
    """A table of the display layer (unit headers, numbers already in percent or points) as markdown: numbers to
    one decimal, missing values as "—", text left-aligned and numbers right-aligned."""
    numeric = [pd.api.types.is_numeric_dtype(df[c]) for c in df.columns]

    def cell(v: object) -> str:
        if isinstance(v, float):
            return "—" if pd.isna(v) else f"{v:.1f}"
        return str(v)

    lines = ["| " + " | ".join(df.columns) + " |", "|" + "|".join("---:" if n else "---" for n in numeric) + "|"]
    lines += ["| " + " | ".join(cell(v) for v in row) + " |" for row in df.itertuples(index=False)]
    return "\n".join(lines) + "\n"


def reactivation_markdown(df: pd.DataFrame) -> str:
    """The retuning attack after each defense (:func:`~unlearnlib.evaluation.reactivation.summarise_reactivation`):
    per defense, the reactivation gap over the cells where it had removed the backdoor, in points."""
    return frame_markdown(reactivation_table(summarise_reactivation(df)))


def clean_markdown(df: pd.DataFrame) -> str:
    """Every defense run on clean models (:func:`~unlearnlib.evaluation.detection.clean_summary`), in percent."""
    return frame_markdown(clean_table(clean_summary(df)))
