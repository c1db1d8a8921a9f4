"""The rendered book reads like a book: the checks that need no browser (``make check-html`` adds the browser).

- plumbing is tagged away with Jupyter Book's ``remove-cell`` on every chapter of ``_toc.yml``, in the sources
  (setup and timing cells) and in the executed copies (papermill's injected parameters); the chapter's own
  ``parameters`` cell stays visible;
- one numbering scheme: ``_toc.yml`` numbers the chapters, no title carries a typed number;
- no output of the executed book shows a warning, a traceback, stderr or a local path;
- every image the HTML references exists, and MathJax is served from the build, not a CDN;
- every table an executed chapter shows (HTML or markdown) has no index column and a unit on each numeric
  column (:func:`unlearnlib.display.style.check_table`);
- the library's figures fit the page with readable text (:func:`unlearnlib.display.style.check_figure`).
"""

from __future__ import annotations

import json
import re
from html.parser import HTMLParser

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import pandas as pd  # noqa: E402
import pytest  # noqa: E402
import torch  # noqa: E402
import yaml  # noqa: E402

import book  # noqa: E402  (tools/book.py)
from unlearnlib.attacks import make_trigger  # noqa: E402
from unlearnlib.display import attacks as plots_attacks  # noqa: E402
from unlearnlib.display import images as viz
from unlearnlib.display import style

CHAPTERS = book.notebooks()


def _cells(nb):
    return json.loads(nb.read_text())["cells"]


def _tags(cell):
    return cell.get("metadata", {}).get("tags", [])


@pytest.mark.parametrize("nb", CHAPTERS, ids=lambda p: p.stem)
def test_plumbing_cells_are_generated_and_removed_from_the_page(nb):
    cells = _cells(nb)
    first, last = cells[0], cells[-1]
    assert "".join(first["source"]) == book.setup_cell_source() and book.REMOVE in _tags(first), \
        "run: python tools/book.py sync-setup"
    assert "".join(last["source"]) == book.timing_cell_source(nb) and book.REMOVE in _tags(last), \
        "run: python tools/book.py sync-setup"
    params = [c for c in cells if "parameters" in _tags(c)]
    assert len(params) == 1, "one parameters cell"
    assert not {t for t in _tags(params[0]) if t.startswith(("remove-", "hide-"))}, "the parameters cell stays visible"


@pytest.mark.parametrize("nb", CHAPTERS, ids=lambda p: p.stem)
def test_every_chapter_has_the_colab_badge_and_run_time_under_its_title(nb):
    cells = _cells(nb)
    title = next(i for i, c in enumerate(cells)
                 if c["cell_type"] == "markdown" and "".join(c["source"]).startswith("# "))
    badge = cells[title + 1]
    assert book.BADGE_TAG in _tags(badge) and "".join(badge["source"]) == book.badge_cell_source(nb)
    assert (book.ROOT / "book" / "images" / "colab-badge.svg").exists()


def test_chapters_are_numbered_by_the_table_of_contents_not_by_hand():
    toc = yaml.safe_load((book.ROOT / "_toc.yml").read_text())
    chapter_parts = [p for p in toc["parts"] if p["caption"] != "Back matter"]
    assert all(p.get("numbered") for p in chapter_parts), "numbered: true on every part with chapters"
    for f in book.toc_files():
        path = next(p for p in (book.ROOT / f"{f}.ipynb", book.ROOT / f"{f}.md") if p.exists())
        text = path.read_text()
        heads = ["".join(c["source"]) for c in json.loads(text)["cells"] if c["cell_type"] == "markdown"] \
            if path.suffix == ".ipynb" else [text]
        for h in heads:
            for line in h.splitlines():
                assert not re.match(r"#+\s*\d+(\.\d+)*\.?\s", line), f"{path.name}: a typed number in {line!r}"


def test_output_problems_finds_warnings_tracebacks_stderr_and_local_paths(tmp_path):
    def nb(*outputs, tags=()):
        p = tmp_path / "nb.ipynb"
        p.write_text(json.dumps({"cells": [{"cell_type": "code", "metadata": {"tags": list(tags)}, "source": "",
                                            "outputs": list(outputs)}]}))
        return p

    stream = {"output_type": "stream", "name": "stdout"}
    assert book.output_problems(nb({**stream, "text": "acc 98.1%\n"})) == []
    assert book.output_problems(nb({**stream, "text": "x.py:3: UserWarning: careful\n"}))
    assert book.output_problems(nb({"output_type": "stream", "name": "stderr", "text": "hello"}))
    assert book.output_problems(nb({"output_type": "error", "ename": "ValueError", "evalue": "x", "traceback": []}))
    assert book.output_problems(nb({**stream, "text": f"saved to {book.ROOT}/results\n"}))
    html = {"output_type": "display_data", "metadata": {}, "data": {"text/html": "Traceback (most recent call last)"}}
    assert book.output_problems(nb(html))
    assert book.output_problems(nb({**stream, "text": "UserWarning: x"}, tags=[book.REMOVE])) == []


def test_executed_book_shows_no_warning_traceback_or_local_path(executed_book):
    for nb in CHAPTERS:
        out = book.executed_path(nb)
        assert book.output_problems(out) == [], nb.name
        injected = [c for c in _cells(out) if "injected-parameters" in _tags(c)]
        assert all(book.REMOVE in _tags(c) for c in injected), f"{nb.name}: papermill's cell is shown"
        glued = book.read_glue(out)
        assert glued.get(f"{book.chapter_key(nb)}_run_seconds", -1) >= 0, f"{nb.name}: run time not glued"


def test_html_references_only_existing_images_and_local_mathjax(built_book):
    html_dir = built_book.parent
    for f in book.toc_files():
        page = html_dir / f"{f}.html"
        text = page.read_text()
        assert "cdn.jsdelivr" not in text and "mathjax@3" not in text, f"{page.name}: MathJax from a CDN"
        for src in re.findall(r'<img[^>]+src="([^"]+)"', text):
            if src.startswith(("http://", "https://", "data:")):
                continue
            assert (page.parent / src).resolve().exists(), f"{page.name}: missing image {src}"
        for plumbing in ("google.colab", "chapter_start", "injected-parameters"):
            assert plumbing not in text, f"{page.name}: plumbing ({plumbing}) is rendered"
        if re.search(r'class="math', text):
            assert re.search(r'<script[^>]+src="[^"]*_static/[^"]*mathjax[^"]*"', text, re.I), \
                f"{page.name}: no local MathJax"


class _Tables(HTMLParser):
    """The tables of an HTML text: (header cells, body rows of cell texts); stacked header rows are joined."""

    def __init__(self):
        super().__init__()
        self.tables, self._cell, self._row, self._part = [], None, None, None

    def handle_starttag(self, tag, attrs):
        if tag == "table":
            self.tables.append(([], []))
        elif tag in ("thead", "tbody"):
            self._part = tag
        elif tag == "tr":
            self._row = []
        elif tag in ("th", "td"):
            self._cell = []

    def handle_endtag(self, tag):
        if tag in ("th", "td") and self._row is not None and self._cell is not None:
            self._row.append(" ".join("".join(self._cell).split()))
            self._cell = None
        elif tag == "tr" and self._row is not None and self.tables:
            (self.tables[-1][0] if self._part == "thead" else self.tables[-1][1]).append(self._row)
            self._row = None

    def handle_data(self, data):
        if self._cell is not None:
            self._cell.append(data)


def html_tables(html):
    parser = _Tables()
    parser.feed(html)
    out = []
    for heads, rows in parser.tables:
        width = max(map(len, heads + rows), default=0)
        head = [" ".join(h[j] for h in heads if j < len(h) and h[j]) for j in range(width)]
        out.append((head, rows))
    return out


def markdown_tables(text):
    out, lines = [], [line.strip() for line in text.splitlines()]
    for i in range(len(lines) - 1):
        if lines[i].startswith("|") and re.fullmatch(r"\|(\s*:?-+:?\s*\|)+", lines[i + 1]) and \
                (i == 0 or not lines[i - 1].startswith("|")):
            cells = (lambda line: [c.strip() for c in line.strip("|").split("|")])
            body = [cells(line) for line in lines[i + 2:] if line.startswith("|")]
            out.append((cells(lines[i]), body))
    return out


def shown_tables(nb_path):
    """(cell index, header, rows) of every table in the outputs of an executed notebook, glued ones included."""
    found = []
    for i, cell in enumerate(_cells(nb_path)):
        for o in cell.get("outputs", []):
            for mime, value in o.get("data", {}).items():
                text = "".join(value) if isinstance(value, list) else str(value)
                if mime.endswith("text/html"):
                    found += [(i, h, r) for h, r in html_tables(text)]
                elif mime.endswith("text/markdown"):
                    found += [(i, h, r) for h, r in markdown_tables(text)]
    return found


def test_executed_book_tables_have_units_and_no_index_column(executed_book):
    tables = 0
    for nb in CHAPTERS:
        for i, head, rows in shown_tables(book.executed_path(nb)):
            tables += 1
            assert style.check_table(head, rows) == [], f"{nb.name}, cell {i}: {head}"
    assert tables >= 10, f"only {tables} tables found in the executed book: is the parser still reading them?"


def test_check_table_finds_index_columns_missing_units_and_bad_percent():
    assert style.check_table(["model", "acc (%)", "seconds (s)", "layers"],
                             [["cnn", "96.6", "0.25", "fc1 fc2"], ["resnet", "—", "1,204.5 ± 2.1", "—"]]) == []
    assert style.check_table(["", "acc (%)"], [["clean", "96.6"]])  # unnamed row labels
    assert style.check_table(["index", "acc (%)"], [["0", "96.6"]])
    assert style.check_table(["model", "seconds"], [["cnn", "0.25"]])  # numeric without a unit
    assert style.check_table(["model", "time (sec)"], [["cnn", "0.25"]])  # not a unit of style.UNITS
    assert style.check_table(["model", "asr (%)"], [["cnn", "9989.0"]])  # percent of a percent


def test_table_helper_puts_units_in_headers_rates_in_percent_and_no_index_column():
    df = pd.DataFrame({"defense": ["agme", "finetune"], "asr": [0.0011, 0.998], "defense_seconds": [2.471, 27.6],
                       "ratio": [11.17, 1.0], "unseen": [10, 175], "peak_mib": [612.3, 700.0]})
    shown = style.table(df)
    assert list(shown.columns) == ["defense", "asr (%)", "seconds (s)", "ratio (×)", "unseen (images)",
                                   "peak memory (MiB)"]
    assert shown["asr (%)"].tolist() == [0.11, 99.8]
    assert style.table(shown).equals(shown), "applying it twice changes nothing"
    head, rows = html_tables(style.frame_html(shown))[0]
    assert head == list(shown.columns) and rows[0][0] == "agme" and style.check_table(head, rows) == []
    labelled = viz.metrics_table({"clean model": {"acc": 0.968, "asr": 0.0011}, "BadNets": {"acc": 0.966, "asr": 1.0}})
    head, rows = html_tables(style.frame_html(labelled))[0]
    assert head == ["model", "acc (%)", "asr (%)"] and rows[1][0] == "BadNets" and float(rows[1][2]) == 100
    assert style.check_table(*html_tables(pd.DataFrame({"acc": [0.9]}).to_html())[0])  # pandas' own: an index


def test_markdown_tables_of_the_bench_and_scaling_carry_units():
    from unlearnlib.display import grid_markdown, scaling_markdown
    from unlearnlib.evaluation.comparison import SUMMARY

    summary = pd.DataFrame([{"attack": "badnets", "defense": "none", "n": 2, "failed": 0,
                             **{f"{m}_{s}": v for m in SUMMARY for s, v in (("mean", 0.5), ("std", 0.01))}}])
    head, rows = markdown_tables(grid_markdown(summary))[0]
    assert "asr (%)" in head and "seconds (s)" in head and style.check_table(head, rows) == []
    row = {"model": "cnn", "params": 1234567, "input": "1x28x28", "defense": "agme-bdk", "unseen": 10, "threads": 2,
           "seconds": 0.5, "peak_mib": 600.0, "mem_method": "VmHWM", "edit_seconds": 0.2, "solve_seconds": 0.01,
           "layers": "conv2 fc1", "dims": "288 1568", "keys": "90 810", "solve_forms": "dual dual", "status": "ok"}
    head, rows = markdown_tables(scaling_markdown(pd.DataFrame([row])))[0]
    assert "peak memory (MiB)" in head and style.check_table(head, rows) == []


def _x(n=6):
    return torch.rand(n, 1, 28, 28, generator=torch.Generator().manual_seed(0))


FIGURES = {
    "trigger_gallery": lambda: viz.trigger_gallery(_x(8), {"BadNets": make_trigger("badnets", (1, 28, 28)),
                                                           "Blended": make_trigger("blended", (1, 28, 28))}),
    "show_images": lambda: viz.show_images(_x(8), [f"label {i} (was {i + 1})" for i in range(8)]),
    "plot_before_after": lambda: viz.plot_before_after({
        "before": {"acc": .98, "asr": 1.0, "target_acc": .99, "ra": 0.0, "asr_floor": .01},
        "after": {"acc": .97, "asr": .02, "target_acc": .95, "ra": .9}, "attack": "badnets",
        "defense": "agme-bdk", "defense_seconds": 0.1, "unseen": 10}),
    "plot_poison_sweep": lambda: plots_attacks.plot_poison_sweep(
        {"BAERASE's grey patch": {0.1: {"asr": .37, "acc": .95}, 0.5: {"asr": .72, "acc": .71}},
         "checkerboard": {0.1: {"asr": .88, "acc": .96}, 0.5: {"asr": 1.0, "acc": .94}}}, clean_acc=.97, planted=.9),
}


@pytest.mark.parametrize("name", sorted(FIGURES))
def test_library_figures_fit_the_page_with_readable_text(name):
    fig = FIGURES[name]()
    try:
        fig.canvas.draw()
        assert style.check_figure(fig) == []
    finally:
        plt.close(fig)


def test_check_html_skips_with_a_clear_message_without_a_browser(monkeypatch, capsys, tmp_path):
    import check_html  # tools/check_html.py

    monkeypatch.setattr(check_html, "find", lambda names: None)
    assert check_html.check(tmp_path, 5) == 0
    assert "SKIPPED" in capsys.readouterr().out


def test_check_html_reports_every_kind_of_problem():
    import check_html

    report = {"raw_tex": ["\\(x\\)"], "broken_images": ["a.png"], "error_outputs": ["stderr: x"],
              "plumbing": ["tag_setup: import"], "mathjax_src": "https://cdn.example/mathjax/tex-chtml.js"}
    found = check_html.problems(report)
    for word in ("raw TeX", "image does not load", "error/warning", "plumbing", "network"):
        assert any(word in f for f in found), word
    assert check_html.problems({"raw_tex": [], "broken_images": [], "error_outputs": [], "plumbing": [],
                                "mathjax_src": "../_static/mathjax/tex-chtml.js"}) == []


def _browser():
    import check_html

    return check_html.find(check_html.BROWSERS) and check_html.find(check_html.DRIVERS)


@pytest.mark.skipif(not _browser(), reason="headless Chromium (chromium, chromium-driver) is not installed")
def test_check_html_fails_a_page_a_reader_should_not_see(tmp_path, capsys):
    import check_html

    (tmp_path / "index.html").write_text(
        '<html><body><p><span class="math notranslate nohighlight">\\(x^2\\)</span></p><img src="missing.png">'
        '<div class="cell tag_setup"><div class="cell_input">import google.colab</div></div>'
        '<div class="cell"><div class="cell_output"><div class="output stderr">oops</div></div></div></body></html>')
    (tmp_path / "clean.html").write_text("<html><body><p>A chapter.</p></body></html>")
    assert check_html.check(tmp_path, 10) == 1
    out = capsys.readouterr().out
    assert "ok   clean.html" in out and "FAIL index.html" in out
    for word in ("raw TeX", "image does not load", "error/warning", "plumbing"):
        assert word in out, word
