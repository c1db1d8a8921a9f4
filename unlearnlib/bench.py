"""``python -m unlearnlib bench``: every attack x every defense x seeds, resumable, with tables and plots.

Each finished cell (attack, defense, seed) is one JSON record under ``out/cells/`` (written atomically); a
rerun skips cells whose record is valid and redoes missing, corrupt, mismatched or failed ones. A cell's
configuration includes the package version and a hash of the package source, so a code change redoes it. The attacked
models come from the zoo cache. Outputs: ``grid.csv`` (one row per cell), ``grid.md`` (mean ± std over seeds
per attack and defense, rates in percent, with the undefended ``none`` row as the reference) and the plots
``asr_vs_seconds.png`` / ``asr_vs_unseen.png``. A defense that raises is recorded as ``failed`` with its error
and traceback, printed at once and listed at the end; the grid goes on (``strict=True`` re-raises instead).

``--grid robustness`` runs the held-out robustness grid of :mod:`unlearnlib.robustness` through the same runner:
cells that carry their own scenario spec (``run_grid(scenarios=...)``), stored as ``cells/<cell>__<defense>.json``.
The command line (``bench``'s flags) is :mod:`unlearnlib.bench_cli`.
"""

from __future__ import annotations

import json
import sys
import traceback
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import pandas as pd
from tqdm.auto import tqdm

from . import __version__, style
from .checks import check_positive_int
from .device import progress_enabled
from .plots_bench import plot_asr_vs_seconds, plot_asr_vs_unseen, save_plots
from .profiles import Profile, get_profile
from .recover.shared import RecoveryMemo
from .registry import ATTACKS, DEFENSES
from .zoo import atomic_write_text, source_fingerprint

METRICS = ("acc", "asr", "target_acc", "ra", "asr_floor")
SUMMARY = ("acc", "asr", "target_acc", "ra", "der", "defense_seconds", "unseen")
RATES = ("acc", "asr", "target_acc", "ra", "der")
GRIDS = ("comparison", "robustness")
STAGE = ("acc", "asr", "target_acc")  # of a ``<defense>+repair`` after unlearning, before the repair (else empty)
__all__ = ["run_grid", "grid_record", "summarise", "speedups", "to_markdown", "load_cells", "plot_asr_vs_seconds",
           "plot_asr_vs_unseen"]


def _names(given: Sequence[str] | None, registry: Any, param: str, default: list[str]) -> list[str]:
    names = list(default if given is None else given)
    for n in names:
        registry.get(n)  # unknown names raise, listing the valid ones
    if not names:
        raise ValueError(f"{param} must name at least one entry; expected some of: {', '.join(registry.names())}")
    return list(dict.fromkeys(names))


def _jsonable(obj: Any) -> Any:
    if hasattr(obj, "tolist"):
        return obj.tolist()
    return str(obj)


def defense_defaults(defense: str) -> dict[str, str]:
    """The constructor defaults of a registered defense: a cell is redone when they change."""
    from .defenses.base import constructor_defaults

    return {k: repr(v) for k, v in constructor_defaults(DEFENSES.get(defense)).items()
            if k not in ("device", "progress")}


def default_defenses() -> list[str]:
    """Every registered defense except the ``<defense>+repair`` compositions, which run when named (each redoes
    its inner defense, so the default grid does not pay for every unlearning twice)."""
    from . import defenses as _registered  # noqa: F401  (registers every defense)

    return [d for d in DEFENSES.names() if getattr(DEFENSES.get(d), "inner", None) is None]


def cell_path(out: Path, attack: str, defense: str, seed: int, cell: str | None = None) -> Path:
    """``cells/<attack>__<defense>__seed<seed>.json``, or ``cells/<cell>__<defense>.json`` for a cell with a spec."""
    if cell is not None:
        return out / "cells" / f"{cell}__{defense}.json"
    return out / "cells" / f"{attack}__{defense}__seed{seed}.json"


SPEC_KEYS = ("cell", "attack", "seed", "model", "target", "poison_ratio", "attack_params")


def check_spec(spec: dict[str, Any]) -> dict[str, Any]:
    """A cell's own scenario spec (the robustness grid's): ``cell`` (its id, used in file names), ``attack``,
    ``seed``, ``model``, ``target``, ``poison_ratio`` and ``attack_params`` -- exactly these keys, JSON values."""
    if not isinstance(spec, dict) or set(spec) != set(SPEC_KEYS):
        got = sorted(spec) if isinstance(spec, dict) else type(spec).__name__
        raise ValueError(f"scenarios: each spec must be a dict with exactly the keys {', '.join(SPEC_KEYS)}; got {got}")
    if not isinstance(spec["cell"], str) or not spec["cell"] or "/" in spec["cell"] or "__" in spec["cell"]:
        raise ValueError(f"scenarios: cell must be a non-empty name without '/' or '__', got {spec['cell']!r}")
    if isinstance(spec["seed"], bool) or not isinstance(spec["seed"], int) or spec["seed"] < 0:
        raise ValueError(f"scenarios: seed must be an integer >= 0, got {spec['seed']!r}")
    ATTACKS.get(spec["attack"])
    if json.loads(json.dumps(spec)) != spec:
        raise ValueError(f"scenarios: spec {spec['cell']} must hold JSON values only (lists, not tuples)")
    return spec


def cell_config(prof: Profile, defense: str, spec: dict[str, Any], *, dataset: str | None, known_target: bool,
                image_size: int | None, params: Mapping[str, Any] | None = None,
                unseen: int | None = None) -> dict[str, Any]:
    """The configuration a cell record must match to be reused: the scenario (a comparison cell's attack, seed,
    target and ratio, or a spec cell's whole ``scenario``), the defense and its parameters (its defaults, with the
    caller's ``params`` over them), the defender samples (``unseen``; None: the defense's own), the package and
    code."""
    if spec.get("cell") is None:
        config = {"profile": prof.name, "dataset": dataset, "attack": spec["attack"], "defense": defense,
                  "seed": spec["seed"], "target": spec["target"], "poison_ratio": spec["poison_ratio"]}
    else:
        config = {"profile": prof.name, "dataset": dataset, "scenario": spec, "defense": defense}
    chosen = {**defense_defaults(defense), **{k: repr(v) for k, v in (params or {}).items()}}
    config.update({"known_target": known_target, "defense_params": chosen, "unseen": unseen,
                   "version": __version__, "code": source_fingerprint()})
    if image_size is not None:
        config["image_size"] = image_size
    return config


def check_defense_params(params: Mapping[str, Mapping[str, Any]] | None,
                         defenses: Sequence[str]) -> dict[str, dict[str, Any]]:
    """``params`` (defense name -> constructor keyword arguments) checked against the grid's ``defenses``: each name
    must be one of them, each keyword one of its constructor's, each value one it accepts (the constructor's
    own checks run here, before any cell)."""
    from .defenses.base import get_defense, settable_params

    out: dict[str, dict[str, Any]] = {}
    for name, kw in (params or {}).items():
        if name not in defenses:
            raise ValueError(f"params: {name!r} is not a defense of this grid; expected one of: "
                             f"{', '.join(defenses)}")
        if not isinstance(kw, Mapping):
            raise ValueError(f"params[{name!r}] must map parameter names to values, got {kw!r}")
        valid = list(settable_params(name))
        bad = sorted(set(kw) - set(valid))
        if bad:
            raise ValueError(f"params[{name!r}]: {', '.join(bad)} not parameters of {name}; valid: "
                             f"{', '.join(valid)}")
        get_defense(name, **kw)
        out[name] = dict(kw)
    return out


def _read_cell(path: Path, config: dict[str, Any], warn: bool = True) -> dict[str, Any] | None:
    """The stored record if it is a finished cell of this exact configuration, else None (and why, warned)."""
    if not path.exists():
        return None
    try:
        rec = json.loads(path.read_text())
        ok = (isinstance(rec, dict) and rec.get("status") == "ok" and rec.get("cell") == config
              and all(isinstance(rec.get(w), dict) and set(METRICS) <= set(rec[w]) for w in ("before", "after")))
    except (OSError, ValueError):
        ok, rec = False, None
    if warn and not ok and not (isinstance(rec, dict) and rec.get("status") == "failed"):
        tqdm.write(f"bench: redoing {path.name} (corrupt or from another configuration)", file=sys.stderr)
    return rec if ok else None


def run_grid(profile: str | Profile = "quick", attacks: Sequence[str] | None = None,
             defenses: Sequence[str] | None = None, seeds: Sequence[int] = (0, 1, 2), out: str | Path = "results",
             progress: bool | None = None, *, dataset: str | None = None, target: int | None = None,
             poison_ratio: float | None = None, known_target: bool = False, device: str = "auto",
             strict: bool = False, write: bool = True, download: bool | None = None,
             image_size: int | None = None, scenarios: Sequence[dict[str, Any]] | None = None,
             quiet: bool = False, params: Mapping[str, Mapping[str, Any]] | None = None,
             unseen: int | None = None, shared: RecoveryMemo | None = None) -> pd.DataFrame:
    """Run (or resume) the grid; return one row per cell, the ``none`` reference included.

    ``attacks`` default to every registered one, ``defenses`` to :func:`default_defenses`; ``known_target`` hands
    the attack's target to the defenses (else they search). With ``write`` the CSV, markdown table and plots are
    written to ``out``.
    A failed cell is reported on stderr with its traceback (also kept in its record), unless ``quiet`` (a chapter
    shows its failed cells in its tables).
    ``scenarios``: instead of attacks x seeds, cells that carry their own scenario spec (:func:`check_spec`: model,
    target, poison ratio, attack parameters; the robustness grid's); ``target``/``poison_ratio`` must then be None.
    ``params``: constructor arguments per defense (``{"agme-bdk": {"layers": "auto"}}``; checked by
    :func:`check_defense_params`), over the profile's; they enter each cell's key, so a variant is never mixed with
    the defaults' cells in a resumed folder.
    ``unseen``: defender samples for every defense (default: each defense's ``default_unseen``); part of the cell's
    key too.
    ``shared``: the :class:`~unlearnlib.recover.shared.RecoveryMemo` through which the defenses of a cell that
    recover the trigger the same way recover it once (default: a new one for this call; pass one to share the
    recoveries with another call, e.g. the ``+repair`` compositions run after their inner defenses).
    """
    from . import defenses as _registered  # noqa: F401  (registers every defense)
    from .experiment import run_defense, spec_scenario

    if shared is not None and not isinstance(shared, RecoveryMemo):
        raise ValueError(f"shared must be None or an unlearnlib.recover.shared.RecoveryMemo, got {shared!r}")

    prof = get_profile(profile)
    dfs = [d for d in _names(defenses, DEFENSES, "defenses", default_defenses()) if d != "none"]
    chosen = check_defense_params(params, dfs)
    if unseen is not None:
        check_positive_int(unseen, "unseen")
    if scenarios is None:
        atk = _names(attacks, ATTACKS, "attacks", ATTACKS.names())
        if not seeds or any(isinstance(s, bool) or not isinstance(s, int) or s < 0 for s in seeds):
            raise ValueError(f"seeds must be a non-empty list of integers >= 0, got {seeds!r}")
        specs = [{"cell": None, "attack": a, "seed": s, "model": None, "target": target,
                  "poison_ratio": poison_ratio, "attack_params": {}} for s in dict.fromkeys(seeds) for a in atk]
    else:
        if target is not None or poison_ratio is not None:
            raise ValueError("target and poison_ratio come from each spec when scenarios are given; pass None")
        specs = [check_spec(sp) for sp in scenarios]
        if not specs or len({sp["cell"] for sp in specs}) != len(specs):
            raise ValueError("scenarios must be a non-empty list of specs with distinct cell names")
    out = Path(out)
    cells = [(sp, d) for sp in specs for d in ["none", *dfs]]
    records: list[dict[str, Any]] = []
    scenarios_built: dict[int, Any] = {}
    shared = RecoveryMemo() if shared is None else shared  # a cell's defenses that recover alike recover once
    bar = tqdm(cells, desc="bench", disable=not progress_enabled(progress), unit="cell")
    for spec, defense in bar:
        attack, seed, name = spec["attack"], spec["seed"], spec["cell"] or f"{spec['attack']}/seed {spec['seed']}"
        bar.set_postfix_str(f"{name}/{defense}")
        config = cell_config(prof, defense, spec, dataset=dataset, known_target=known_target, image_size=image_size,
                             params=chosen.get(defense), unseen=None if defense == "none" else unseen)
        path = cell_path(out, attack, defense, seed, spec["cell"])
        rec = _read_cell(path, config, warn=progress_enabled(progress))  # a chapter (no progress) stays quiet
        if rec is None:
            if id(spec) not in scenarios_built:
                scenarios_built = {id(spec): spec_scenario(spec, prof, dataset=dataset, device=device,
                                                           progress=False, download=download, image_size=image_size)}
            sc = scenarios_built[id(spec)]
            try:
                rec = run_defense(sc, defense, unseen, target=sc.target if known_target else None, device=device,
                                  progress=False, shared=shared, **chosen.get(defense, {})).record
                rec["status"] = "ok"
            except Exception as exc:  # a failing defense is one failed cell, not a crashed grid
                if strict:
                    raise
                tb = traceback.format_exc()  # kept in the cell's record
                if not quiet:
                    tqdm.write(f"bench: {name}/{defense} FAILED: {type(exc).__name__}: {exc}\n{tb}", file=sys.stderr)
                rec = {"dataset": sc.split.name, "attack": attack, "defense": defense, "seed": seed,
                       "target": sc.target, "profile": prof.name, "before": sc.before, "status": "failed",
                       "error": f"{type(exc).__name__}: {exc}", "traceback": tb}
            if spec["cell"] is not None:
                rec["scenario"] = spec
            rec["cell"] = config
            atomic_write_text(path, json.dumps(rec, indent=1, default=_jsonable))
        records.append(rec)
    df = cells_frame(records)
    failed = [r for r in records if r["status"] == "failed"]
    if write:
        write_outputs(df, out)
    if failed and not quiet:
        tqdm.write(f"bench: {len(failed)} cell(s) failed: " + "; ".join(
            f"{r['attack']}/{r['defense']}/seed {r['seed']}: {r['error']}" for r in failed), file=sys.stderr)
    return df


def grid_record(profile: str | Profile, attack: str, defense: str, seed: int = 0,
                out: str | Path | None = None, together: Sequence[str] = ()) -> dict[str, Any]:
    """One cell of the book's comparison grid (attack, defense, seed), run or read back: the record
    :func:`run_grid` stores. Chapters that show one cell ask for it here, so chapter 7's grid reuses it instead of
    computing it again. ``out`` defaults to the book's grid folder in the zoo cache (``bench/book-<profile>``).
    ``together``: more defenses of the same attack and seed, run in the same grid call so that they share one
    trigger recovery (e.g. ``baerase`` with ``baerase+repair``); their cells are stored for later calls."""
    from .zoo import cache_dir

    prof = get_profile(profile)
    out = cache_dir() / "bench" / f"book-{prof.name}" if out is None else Path(out)
    run_grid(prof, [attack], list(dict.fromkeys([defense, *together])), seeds=[seed], out=out, progress=False,
             strict=True, write=False)
    return json.loads(cell_path(out, attack, defense, seed).read_text())


def cells_frame(records: Sequence[dict[str, Any]]) -> pd.DataFrame:
    """One flat row per cell record: ``<metric>`` after the defense, ``<metric>_before`` for the attacked model."""
    rows = []
    for r in records:
        row = {k: r.get(k) for k in ("attack", "defense", "seed", "dataset", "target", "status", "unseen",
                                     "defense_seconds", "der")}
        row.update({m: r.get("after", {}).get(m) for m in METRICS})
        row.update({f"{m}_before": r.get("before", {}).get(m) for m in METRICS})
        row.update({f"{m}_unlearned": r.get("unlearned", {}).get(m) for m in STAGE})  # +repair: before the repair
        row["error"] = r.get("error", "")
        spec = r.get("scenario")
        if isinstance(spec, dict):  # a cell with its own scenario spec: its fields as columns
            row.update({"cell": spec.get("cell"), "model": spec.get("model"),
                        "poison_ratio": spec.get("poison_ratio"),
                        "attack_params": json.dumps(spec.get("attack_params"), sort_keys=True)})
        rows.append(row)
    cols = ["attack", "defense", "seed", "dataset", "target", "status", "unseen", "defense_seconds", "der",
            *METRICS, *(f"{m}_before" for m in METRICS), *(f"{m}_unlearned" for m in STAGE), "error"]
    if any(isinstance(r.get("scenario"), dict) for r in records):
        cols = ["cell", "model", "poison_ratio", "attack_params", *cols]
    df = pd.DataFrame(rows, columns=cols)
    order = ["cell", "defense"] if "cell" in cols else ["attack", "defense", "seed"]
    return df.sort_values(order, kind="stable").reset_index(drop=True)


def load_cells(out: str | Path) -> pd.DataFrame:
    """Every cell record under ``out/cells`` (unreadable files skipped), as :func:`cells_frame` rows."""
    recs = []
    for p in sorted((Path(out) / "cells").glob("*.json")):
        try:
            recs.append(json.loads(p.read_text()))
        except (OSError, ValueError):
            continue
    return cells_frame(recs)


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


def to_markdown(summary: pd.DataFrame) -> str:
    """The summary as a markdown table: rates (and der) in percent, ``mean ± std`` over ``n`` seeds, each
    header with its unit (:data:`unlearnlib.style.HEADERS`)."""

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


def write_outputs(df: pd.DataFrame, out: str | Path) -> None:
    """``grid.csv``, ``grid.md`` and the two plots, each written atomically into ``out``."""
    out = Path(out)
    atomic_write_text(out / "grid.csv", df.to_csv(index=False))
    if (df["status"] == "ok").any():
        summary = summarise(df)
        atomic_write_text(out / "grid.md", to_markdown(summary))
        save_plots(summary, out)
