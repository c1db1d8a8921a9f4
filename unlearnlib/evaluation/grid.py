"""The one grid runner: attacks x defenses x seeds (the comparison grid), or cells that carry their own scenario
(the robustness grid), resumable; it returns one row per cell (:func:`cells_frame`).

Each finished cell (attack, defense, seed) is one JSON record under ``out/cells/`` (written atomically); a
rerun skips cells whose record is valid and redoes missing, corrupt, mismatched or failed ones. A cell's
configuration includes the package version and a hash of the package source, so a code change redoes it. The
attacked models come from the model cache (:mod:`unlearnlib.core.cache`). A defense that raises is recorded as
``failed`` with its error and traceback, printed at once and listed at the end; the grid goes on (``strict=True``
re-raises instead). The summaries are :mod:`.comparison` and :mod:`.robustness`; the command line
(:mod:`unlearnlib.cli.bench`) writes the tables and plots.
"""

from __future__ import annotations

import json
import sys
import traceback
from collections.abc import Mapping, Sequence
from dataclasses import asdict
from pathlib import Path
from typing import Any

import pandas as pd
from tqdm.auto import tqdm

from ..core.cache import atomic_write_text, cache_dir, source_fingerprint
from ..core.checks import check_positive_int
from ..core.device import progress_enabled
from ..core.memo import RecoveryMemo
from ..core.registry import ATTACKS, DEFENSES
from ..core.version import __version__
from ..defenses.base import constructor_defaults, get_defense, settable_params
from ..experiment.profiles import Profile, get_profile
from ..experiment.runs import run_defense
from ..experiment.scenario import clean_victim, spec_scenario
from .cells import METRICS, cells_frame
from .reactivation import Retuning, reactivation, references

GRIDS = ("comparison", "robustness")
VICTIMS = ("backdoored", "clean")  # the model each defense runs on


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
    return {k: repr(v) for k, v in constructor_defaults(DEFENSES.get(defense)).items()
            if k not in ("device", "progress")}


def default_defenses() -> list[str]:
    """Every registered defense except the ``<defense>+repair`` compositions, which run when named (each redoes
    its inner defense, so the default grid does not pay for every unlearning twice)."""
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
                unseen: int | None = None, victim: str = "backdoored",
                retuning: Retuning | None = None) -> dict[str, Any]:
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
    if victim != "backdoored":
        config["victim"] = victim
    if retuning is not None:
        config["retuning"] = asdict(retuning)
    return config


def check_defense_params(params: Mapping[str, Mapping[str, Any]] | None,
                         defenses: Sequence[str]) -> dict[str, dict[str, Any]]:
    """``params`` (defense name -> constructor keyword arguments) checked against the grid's ``defenses``: each name
    must be one of them, each keyword one of its constructor's, each value one it accepts (the constructor's
    own checks run here, before any cell)."""
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
             strict: bool = False, download: bool | None = None,
             image_size: int | None = None, scenarios: Sequence[dict[str, Any]] | None = None,
             quiet: bool = False, params: Mapping[str, Mapping[str, Any]] | None = None,
             unseen: int | None = None, shared: RecoveryMemo | None = None, victim: str = "backdoored",
             retuning: Retuning | None = None) -> pd.DataFrame:
    """Run (or resume) the grid; return one row per cell, the ``none`` reference included.

    ``attacks`` default to every registered one, ``defenses`` to :func:`default_defenses`; ``known_target`` hands
    the attack's target to the defenses (else they search).
    A failed cell is reported on stderr with its traceback (also kept in its record), unless ``quiet`` (a chapter
    shows its failed cells in its tables).
    ``scenarios``: instead of attacks x seeds, cells that carry their own scenario spec (:func:`check_spec`: model,
    target, poison ratio, attack parameters; the robustness grid's); ``target``/``poison_ratio`` must then be None.
    ``params``: constructor arguments per defense (``{"agme-bdk": {"layers": "auto"}}``; checked by
    :func:`check_defense_params`), over the profile's; they enter each cell's key, so a variant is never mixed with
    the defaults' cells in a resumed folder.
    ``unseen``: defender samples for every defense (default: each defense's ``default_unseen``); part of the cell's
    key too.
    ``shared``: the :class:`~unlearnlib.core.memo.RecoveryMemo` through which the defenses of a cell that
    recover the trigger the same way recover it once (default: a new one for this call; pass one to share the
    recoveries with another call, e.g. the ``+repair`` compositions run after their inner defenses).
    ``victim``: ``"clean"`` runs every defense on the cell's clean model instead (:func:`clean_victim`: was there a
    backdoor at all?). ``retuning``: after each defense, the retuning attack of :mod:`.reactivation` with this
    protocol (the record's ``reactivation``: is it really gone?). Both enter each cell's key.
    """
    if shared is not None and not isinstance(shared, RecoveryMemo):
        raise ValueError(f"shared must be None or an unlearnlib.RecoveryMemo, got {shared!r}")

    if victim not in VICTIMS:
        raise ValueError(f"victim must be one of {', '.join(VICTIMS)}, got {victim!r}")
    if retuning is not None and not isinstance(retuning, Retuning):
        raise ValueError(f"retuning must be None or an unlearnlib Retuning protocol, got {retuning!r}")
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
    refs: dict[str, list[float]] | None = None
    shared = RecoveryMemo() if shared is None else shared  # a cell's defenses that recover alike recover once
    bar = tqdm(cells, desc="bench", disable=not progress_enabled(progress), unit="cell")
    for spec, defense in bar:
        attack, seed, name = spec["attack"], spec["seed"], spec["cell"] or f"{spec['attack']}/seed {spec['seed']}"
        bar.set_postfix_str(f"{name}/{defense}")
        config = cell_config(prof, defense, spec, dataset=dataset, known_target=known_target, image_size=image_size,
                             params=chosen.get(defense), unseen=None if defense == "none" else unseen,
                             victim=victim, retuning=retuning)
        path = cell_path(out, attack, defense, seed, spec["cell"])
        rec = _read_cell(path, config, warn=progress_enabled(progress))  # a chapter (no progress) stays quiet
        if rec is None:
            if id(spec) not in scenarios_built:
                built = spec_scenario(spec, prof, dataset=dataset, device=device, progress=False, download=download,
                                      image_size=image_size)
                scenarios_built = {id(spec): clean_victim(built) if victim == "clean" else built}
                refs = None  # the retuning of this scenario's clean and backdoored models, once
            sc = scenarios_built[id(spec)]
            try:
                run = run_defense(sc, defense, unseen, target=sc.target if known_target else None, device=device,
                                  progress=False, shared=shared, **chosen.get(defense, {}))
                rec = run.record
                if retuning is not None:
                    refs = references(sc, retuning) if refs is None else refs
                    out_r = reactivation(sc, run.model, retuning, refs=refs)
                    rec["reactivation"] = {k: out_r[k] for k in ("curves", "steps", "gap", "protocol")}
                rec["victim"], rec["status"] = victim, "ok"
            except Exception as exc:  # a failing defense is one failed cell, not a crashed grid
                if strict:
                    raise
                tb = traceback.format_exc()  # kept in the cell's record
                if not quiet:
                    tqdm.write(f"bench: {name}/{defense} FAILED: {type(exc).__name__}: {exc}\n{tb}", file=sys.stderr)
                rec = {"dataset": sc.split.name, "attack": attack, "defense": defense, "seed": seed,
                       "target": sc.target, "profile": prof.name, "before": sc.before, "status": "failed",
                       "error": f"{type(exc).__name__}: {exc}", "traceback": tb, "victim": victim}
            if spec["cell"] is not None:
                rec["scenario"] = spec
            rec["cell"] = config
            atomic_write_text(path, json.dumps(rec, indent=1, default=_jsonable))
        records.append(rec)
    df = cells_frame(records)
    failed = [r for r in records if r["status"] == "failed"]
    if failed and not quiet:
        tqdm.write(f"bench: {len(failed)} cell(s) failed: " + "; ".join(
            f"{r['attack']}/{r['defense']}/seed {r['seed']}: {r['error']}" for r in failed), file=sys.stderr)
    return df


def grid_record(profile: str | Profile, attack: str, defense: str, seed: int = 0,
                out: str | Path | None = None, together: Sequence[str] = ()) -> dict[str, Any]:
    """One cell of the book's comparison grid (attack, defense, seed), run or read back: the record
    :func:`run_grid` stores. Chapters that show one cell ask for it here, so chapter 7's grid reuses it instead of
    computing it again. ``out`` defaults to the book's grid folder in the model cache folder (``bench/book-<profile>``).
    ``together``: more defenses of the same attack and seed, run in the same grid call so that they share one
    trigger recovery (e.g. ``baerase`` with ``baerase+repair``); their cells are stored for later calls."""
    prof = get_profile(profile)
    out = cache_dir() / "bench" / f"book-{prof.name}" if out is None else Path(out)
    run_grid(prof, [attack], list(dict.fromkeys([defense, *together])), seeds=[seed], out=out, progress=False,
             strict=True)
    return json.loads(cell_path(out, attack, defense, seed).read_text())
