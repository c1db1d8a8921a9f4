"""The comparison grid's summary: every attack x defense x seed of :func:`unlearnlib.evaluation.grid.run_grid`, as
mean and std over seeds per (attack, defense), and speed ratios between defenses read beside their asr."""

from __future__ import annotations

from collections.abc import Sequence

import pandas as pd

from ..core.registry import DEFENSES

SUMMARY = ("acc", "asr", "target_acc", "ra", "der", "defense_seconds", "unseen")
RATES = ("acc", "asr", "target_acc", "ra", "der")


def summarise(df: pd.DataFrame) -> pd.DataFrame:
    """Mean and std over seeds of the finished cells, per (attack, defense): ``<metric>_mean``/``_std``, ``n``
    (finished seeds) and ``failed`` (failed seeds; a pair whose every seed failed has NaN metrics)."""
    ok = df[df["status"] == "ok"]
    if ok.empty:
        raise ValueError("df has no finished (status 'ok') cells to summarise")
    g = ok.groupby(["attack", "defense"], sort=False)[list(SUMMARY)]
    s = g.agg(["mean", "std"])
    s.columns = [f"{m}_{stat}" for m, stat in s.columns]
    s["n"] = g.size()
    failed = df[df["status"] == "failed"].groupby(["attack", "defense"]).size().rename("failed")
    s = s.join(failed, how="outer") if len(failed) else s.assign(failed=0)
    s[["n", "failed"]] = s[["n", "failed"]].fillna(0).astype(int)
    s = s.reset_index()
    order = {"none": -1, **{d: i for i, d in enumerate(DEFENSES.names())}}
    s["_o"] = s["defense"].map(lambda d: order.get(d, len(order)))
    return s.sort_values(["attack", "_o", "defense"]).drop(columns="_o").reset_index(drop=True)


def speedups(summary: pd.DataFrame, fast: str = "agme-bdk", slow: Sequence[str] = ("baerase", "finetune")
             ) -> pd.DataFrame:
    """Per attack: how many times faster ``fast`` is than each of ``slow`` (mean defense_seconds ratio), and the
    asr each reaches (fractions), so a speed claim is always read beside what the defense achieved."""
    rows = []
    for attack, sub in summary.groupby("attack", sort=False):
        by = sub.set_index("defense")
        if fast not in by.index:
            continue
        for s in slow:
            if s in by.index:
                rows.append({"attack": attack, "fast": fast, "slow": s,
                             "ratio": by.at[s, "defense_seconds_mean"] / by.at[fast, "defense_seconds_mean"],
                             "asr_fast": by.at[fast, "asr_mean"], "asr_slow": by.at[s, "asr_mean"]})
    return pd.DataFrame(rows, columns=["attack", "fast", "slow", "ratio", "asr_fast", "asr_slow"])
