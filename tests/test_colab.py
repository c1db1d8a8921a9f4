"""The Colab editions (colab/, tools/colab.py): generated from the chapters and in sync with them, and a reader who
runs one outside the repository sees every number the prose quotes, with no raw MyST left."""

from __future__ import annotations

import json
import re
import shutil

import nbformat
import pytest

import book
import colab

RAW = ("{glue", "{cite", "```{", ":::{")


def _text(nb: dict) -> str:
    """What a reader sees of a notebook: its markdown cells and every text output."""
    parts = ["".join(c["source"]) for c in nb["cells"] if c["cell_type"] == "markdown"]
    for c in nb["cells"]:
        for o in c.get("outputs", []):
            for k, v in o.get("data", {}).items():
                if k.startswith("text/"):
                    parts.append("".join(v) if isinstance(v, list) else v)
            if "text" in o:
                parts.append("".join(o["text"]))
    return "\n".join(parts)


def test_the_committed_editions_are_generated_from_the_chapters(tmp_path):
    written = colab.write_all(tmp_path)
    assert [p.name for p in written] == [nb.name for nb in book.notebooks()]
    for p in written:
        committed = colab.OUT / p.name
        assert committed.exists(), f"{p.name}: run python tools/colab.py"
        assert json.loads(committed.read_text()) == json.loads(p.read_text()), f"{p.name}: run python tools/colab.py"


def test_an_edition_keeps_no_myst_and_quotes_numbers_through_show():
    nb = colab.edition(book.ROOT / "book" / "05_editing_without_the_trigger.ipynb")
    markdown = "\n".join(c.source for c in nb.cells if c.cell_type == "markdown")
    assert not any(r in markdown for r in RAW)
    shown = [c.source for c in nb.cells if c.cell_type == "code" and "show(r'''" in c.source]
    assert shown and all("{glue:text}`" in s for s in shown)
    assert not any("myst_nb" in c.source for c in nb.cells if c.cell_type == "code")
    assert "(Wang et al., 2019)" in "\\n".join(shown) + markdown  # {cite}`neuralcleanse`


def test_fill_formats_the_values_and_marks_the_ones_not_computed_yet():
    from unlearnlib.display import prose as live

    text = "asr {glue:text}`a:.2f`% in {glue:text}`n` images; later {glue:text}`b`"
    assert live.fill(text, {"a": 0.126, "n": 50}) == f"asr 0.13% in 50 images; later {live.PENDING}"


@pytest.mark.slow
def test_a_chapter_runs_outside_the_repository_and_shows_its_numbers(executed_book, tmp_path):
    """Chapter 4's Colab edition, executed the way a reader runs it (no built book, no myst_nb glue, a working
    folder outside the repository): every number the prose quotes is in what the reader sees."""
    import papermill as pm

    src = colab.OUT / "04_model_editing.ipynb"
    shutil.copy(src, tmp_path / src.name)
    out = tmp_path / "executed.ipynb"
    book.poll_in_slices()
    pm.execute_notebook(str(tmp_path / src.name), str(out), kernel_name="python3", cwd=str(tmp_path),
                        progress_bar=False, log_output=False, execution_timeout=book.CELL_TIMEOUT_S)
    seen = _text(json.loads(out.read_text()))
    assert not any(r in seen for r in RAW), [r for r in RAW if r in seen]
    glued = book.read_glue(book.executed_path(book.ROOT / "book" / "04_model_editing.ipynb"))
    quoted = set(re.findall(r"\{glue:text\}`([^`:]+)", (book.ROOT / "book" / "04_model_editing.ipynb").read_text()))
    for name in quoted - {"ch04_run_seconds"}:
        if "seconds" not in name:  # timings differ from run to run; every other number is the book's
            value = glued[name]
            assert str(value) in seen or (not isinstance(value, str) and f"{value:.2f}" in seen), name
    nbformat.validate(nbformat.read(out, as_version=4))
