"""A grid's cell records as rows: :func:`cells_frame` flattens what :func:`unlearnlib.evaluation.grid.run_grid`
stores (one JSON record per cell) into one table row each, the form every summary, plot and stored run uses."""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pandas as pd

METRICS = ("acc", "asr", "target_acc", "ra", "asr_floor")
STAGE = ("acc", "asr", "target_acc")  # of a ``<defense>+repair`` after unlearning, before the repair (else empty)
FLIPS = ("n", "lost", "gained")  # the target class's test images, and those the defense turned wrong / right


def found_target(info: dict[str, Any]) -> int | None:
    """The target class a defense named in its ``info`` (the repair's, else the recovery's or the search's); None
    for one that searched none (it was given the trigger, or needs no target)."""
    for key in ("repair_target", "recovered_target", "target_used", "target"):
        if isinstance(info.get(key), int):
            return int(info[key])
    return None


DETECTOR_SCORES = ("search_score", "search_anomaly", "nc_anomaly")


def detector_scores(info: dict[str, Any]) -> dict[str, float | None]:
    """What a blind defense's own statistics said, as numbers a detector can threshold: the target search's
    most anomalous class's trigger rate (``search_score``) and anomaly index (``search_anomaly``), and Neural
    Cleanse's largest anomaly index (``nc_anomaly``, from a search over every class); None where not computed."""
    out: dict[str, float | None] = dict.fromkeys(DETECTOR_SCORES)
    anomaly, scores = info.get("search_anomaly"), info.get("search_scores")
    if isinstance(anomaly, list) and isinstance(scores, list) and anomaly:
        k = max(range(len(anomaly)), key=anomaly.__getitem__)
        out["search_score"], out["search_anomaly"] = float(scores[k]), float(anomaly[k])
    index = info.get("nc_anomaly_index", info.get("anomaly_index"))
    if isinstance(index, list) and len(index) > 1:
        out["nc_anomaly"] = float(max(index))
    return out


def detected(record: dict[str, Any]) -> bool | None:
    """Whether the defense's own statistics found a backdoor: the record's ``detected``, or for a record written
    before that field, its search's outlier or Neural Cleanse's flag in ``info`` (None when told the target)."""
    if "detected" in record:
        return record["detected"]
    info = record.get("info", {})
    if info.get("known_target") or info.get("target_given"):
        return None
    for key in ("search_outlier", "nc_detected"):
        if key in info:
            return bool(info[key])
    return None


def _worst_class_drop(class_acc: Any) -> float | None:
    """The largest drop of one class's accuracy (before - after), from a record's ``class_acc``."""
    if not isinstance(class_acc, dict):
        return None
    return max(b - a for b, a in zip(class_acc["before"], class_acc["after"]))


def cells_frame(records: Sequence[dict[str, Any]]) -> pd.DataFrame:
    """One flat row per cell record: ``<metric>`` after the defense, ``<metric>_before`` for the attacked model,
    the target class's flips (``target_lost``, ``target_gained``, ``target_n``), the target it named
    (:func:`found_target`), the ``victim``, whether it ``detected`` a backdoor and its :func:`detector_scores`,
    the worst class's accuracy drop, and after a retuning (``reactivation``) the retuned asr of the defended
    (``retuned_defended``), clean and backdoored models and the ``reactivation_gap``."""
    rows = []
    for r in records:
        row = {k: r.get(k) for k in ("attack", "defense", "seed", "dataset", "target", "status", "unseen",
                                     "defense_seconds", "der")}
        row.update({m: r.get("after", {}).get(m) for m in METRICS})
        row.update({f"{m}_before": r.get("before", {}).get(m) for m in METRICS})
        row.update({f"{m}_unlearned": r.get("unlearned", {}).get(m) for m in STAGE})  # +repair: before the repair
        for key, suffix in (("target_flips", ""), ("target_flips_unlearned", "_unlearned")):
            row.update({f"target_{k}{suffix}": r.get(key, {}).get(k) for k in FLIPS})
        row["found_target"] = found_target(r.get("info", {}))
        row.update(victim=r.get("victim", "backdoored"), detected=detected(r),
                   class_drop_worst=_worst_class_drop(r.get("class_acc")), **detector_scores(r.get("info", {})))
        react = r.get("reactivation")
        if isinstance(react, dict):
            row.update({f"retuned_{k}": react["curves"][k][-1] for k in ("defended", "clean", "backdoored")})
            row["reactivation_gap"] = react["gap"]
        row["error"] = r.get("error", "")
        spec = r.get("scenario")
        if isinstance(spec, dict):  # a cell with its own scenario spec: its fields as columns
            row.update({"cell": spec.get("cell"), "model": spec.get("model"),
                        "poison_ratio": spec.get("poison_ratio"),
                        "attack_params": json.dumps(spec.get("attack_params"), sort_keys=True)})
        rows.append(row)
    cols = ["attack", "defense", "seed", "dataset", "target", "status", "unseen", "defense_seconds", "der",
            *METRICS, *(f"{m}_before" for m in METRICS), *(f"{m}_unlearned" for m in STAGE),
            *(f"target_{k}{s}" for s in ("", "_unlearned") for k in FLIPS), "found_target", "victim", "detected",
            "class_drop_worst", *DETECTOR_SCORES, "error"]
    if any(isinstance(r.get("reactivation"), dict) for r in records):
        cols[-1:-1] = [*(f"retuned_{k}" for k in ("defended", "clean", "backdoored")), "reactivation_gap"]
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
