"""Rebuild a stored robustness grid's table from its cell records with the current code's columns.

    python tools/retabulate.py results/final-grid

A grid's table is written once, when the grid finishes, by the code the grid started with; a column added to
:func:`unlearnlib.evaluation.cells.cells_frame` later (e.g. a defense's detector scores, read from each record's
``info``) needs the records again. They are in the folder's ``cells/`` (not committed), so this runs where the grid
ran. The records are not recomputed: every number they hold stays as the grid measured it, which
``provenance.json`` keeps describing; it gains ``tabulated`` (the commit that rebuilt the table, and when).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from unlearnlib.cli.bench import write_robustness  # noqa: E402
from unlearnlib.evaluation import rule  # noqa: E402
from unlearnlib.evaluation.cells import load_cells  # noqa: E402
from unlearnlib.evaluation.evidence import PROVENANCE, source_state, write_provenance  # noqa: E402


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("folder", type=Path, help="a stored robustness grid (results/<name>) with its cells/")
    args = p.parse_args(argv)
    prov_path = args.folder / PROVENANCE
    if not prov_path.is_file() or not (args.folder / "cells").is_dir():
        raise SystemExit(f"error: {args.folder} must hold {PROVENANCE} and the grid's cells/")
    prov = json.loads(prov_path.read_text())
    df = load_cells(args.folder)
    if df["cell"].nunique() != prov["cells"]:
        raise SystemExit(f"error: cells/ holds {df['cell'].nunique()} cells, the provenance {prov['cells']}")
    files = write_robustness(rule.judged(df), args.folder)
    prov["tabulated"] = {**source_state(), "when": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
                         "by": "tools/retabulate.py"}
    write_provenance(args.folder, prov)
    print(f"rewrote {', '.join(files)} and {PROVENANCE} in {args.folder} from {len(df)} records")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
