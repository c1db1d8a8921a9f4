"""Text a terminal or a notebook prints: a run record as a short before/after table."""

from __future__ import annotations

from typing import Any

METRICS = ("acc", "asr", "target_acc", "ra", "asr_floor")


def format_record(rec: dict[str, Any]) -> str:
    """A short before/after table in percent."""
    lines = [f"{rec['dataset']} / {rec['attack']} / {rec['defense']} / seed {rec['seed']} "
             f"(target {rec['target']}, unseen {rec['unseen']}, {rec['defense_seconds']:.2f} s)",
             f"{'':8s}" + "".join(f"{m:>12s}" for m in METRICS)]
    for when in ("before", "after"):
        lines.append(f"{when:8s}" + "".join(f"{100 * rec[when][m]:11.2f}%" for m in METRICS))
    return "\n".join(lines)
