"""The book: notebook hygiene, execution through papermill, glued numbers, and the -W HTML build.

Each chapter's glued numbers are checked in its own test file (``test_book_chNN_*.py``); this file checks what
holds for every notebook.
"""

from __future__ import annotations

import json

import pytest

import book

NOTEBOOKS = sorted((book.ROOT / "book").glob("*.ipynb"))


@pytest.mark.parametrize("nb", NOTEBOOKS, ids=lambda p: p.stem)
def test_notebook_is_committed_clean(nb):
    cells = json.loads(nb.read_text())["cells"]
    assert not any(c.get("outputs") for c in cells if c["cell_type"] == "code"), f"{nb.name} has outputs"
    assert not any(c.get("execution_count") for c in cells if c["cell_type"] == "code"), f"{nb.name} has counts"
    assert any("parameters" in c.get("metadata", {}).get("tags", []) for c in cells), f"{nb.name}: no parameters cell"


@pytest.mark.parametrize("nb", NOTEBOOKS, ids=lambda p: p.stem)
def test_notebook_starts_with_the_generated_colab_setup_cell(nb):
    first = json.loads(nb.read_text())["cells"][0]
    assert "".join(first["source"]) == book.setup_cell_source(), "run: python tools/book.py sync-setup"


@pytest.mark.parametrize("nb", NOTEBOOKS, ids=lambda p: p.stem)
def test_notebook_is_in_the_table_of_contents(nb):
    assert nb in book.notebooks(), f"{nb.name} is not listed in _toc.yml"


def test_parameters_cell_declares_profile():
    for nb in NOTEBOOKS:
        cells = json.loads(nb.read_text())["cells"]
        params = next(c for c in cells if "parameters" in c.get("metadata", {}).get("tags", []))
        assert "profile" in "".join(params["source"]), f"{nb.name}: the parameters cell must set `profile`"


def test_every_notebook_executes(executed_book):
    assert set(executed_book) == {nb.stem for nb in book.notebooks()}
    print(f"notebook execution: {sum(executed_book.values()):.1f} s ({executed_book})")


def test_html_build_with_warnings_as_errors(built_book):
    index = built_book
    assert index.exists()
    for f in book.toc_files():
        page = book.HTML / f"{f}.html"
        assert page.exists(), f"{page} was not rendered"
        assert "Traceback" not in page.read_text(), f"{page} shows a traceback"
