"""The lab notebook lives in docs/decisions/, not in the code (fast: no training, no model).

- every record is ``docs/decisions/NNNN-<title>.md``, starts with ``# NNNN `` and has the sections Question,
  Decision, Evidence and Reproduce;
- the book's back-matter page (``book/decisions.md``) links every record, and every link there points to a record
  that exists or to one of the reserved records 0001-0004;
- no docstring in ``unlearnlib/`` is longer than :data:`MAX_DOCSTRING_LINES` lines, and no file there holds the
  history of a tuning experiment (:data:`NOTEBOOK_PHRASES`).
"""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
RECORDS = ROOT / "docs" / "decisions"
PAGE = ROOT / "book" / "decisions.md"
PACKAGE = ROOT / "unlearnlib"
NAME = re.compile(r"^(\d{4})-[a-z0-9-]+\.md$")
SECTIONS = ("Question", "Decision", "Evidence", "Reproduce")
# the records 0001-0004 are written elsewhere; the page may link them before they exist
RESERVED = {"0001-success-rule.md", "0002-evidence-and-its-verification.md", "0003-package-layers.md",
            "0004-attackers-check-their-work.md"}
MAX_DOCSTRING_LINES = 25
# "grid seed", "not adopted", "issue <number>", also where a line break (and a comment's "#") splits them
NOTEBOOK_PHRASES = re.compile(r"grid[\s#]+seed|not[\s#]+adopted|issue[\s#]+\d+", re.IGNORECASE)
LINK = re.compile(r"\[[^\]]*\]\(([^)\s]+)\)")


def records() -> list[Path]:
    return sorted(p for p in RECORDS.iterdir() if p.is_file()) if RECORDS.is_dir() else []


def records_url() -> str:
    """Where the page's links point: ``repository.url`` of ``_config.yml``, its branch, ``docs/decisions/``."""
    repo = yaml.safe_load((ROOT / "_config.yml").read_text())["repository"]
    return f"{repo['url'].rstrip('/')}/blob/{repo.get('branch', 'main')}/docs/decisions/"


def page_links() -> list[str]:
    return LINK.findall(PAGE.read_text())


def docstrings(path: Path) -> list[tuple[str, int]]:
    """``(name, lines)`` for every docstring of the module ``path`` (module, classes, functions), counted from its
    opening to its closing quotes in the source."""
    tree = ast.parse(path.read_text(), filename=str(path))
    out = []
    for node in ast.walk(tree):
        if not isinstance(node, (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef)):
            continue
        if ast.get_docstring(node, clean=False) is None:
            continue
        expr = node.body[0]
        out.append((getattr(node, "name", "<module>"), expr.end_lineno - expr.lineno + 1))
    return out


def package_files() -> list[Path]:
    return sorted(p for p in PACKAGE.rglob("*") if p.is_file() and "__pycache__" not in p.parts
                  and p.suffix not in (".pyc", ".pyo"))


def test_there_are_records_and_a_page():
    assert records(), "docs/decisions/ holds no record"
    assert PAGE.exists(), "book/decisions.md is missing"


@pytest.mark.parametrize("path", records(), ids=lambda p: p.name)
def test_every_record_is_named_numbered_and_has_its_sections(path):
    m = NAME.match(path.name)
    assert m, f"{path.name}: a record is named NNNN-<lower-case-title>.md"
    text = path.read_text()
    first = text.splitlines()[0] if text else ""
    assert first.startswith(f"# {m.group(1)} "), f"{path.name}: the first line must be '# {m.group(1)} <title>'"
    heads = {line[3:].strip() for line in text.splitlines() if line.startswith("## ")}
    missing = [s for s in SECTIONS if s not in heads]
    assert not missing, f"{path.name}: no section {missing}"


def test_the_record_numbers_are_unique():
    numbers = [p.name[:4] for p in records()]
    assert len(numbers) == len(set(numbers)), f"two records share a number: {sorted(numbers)}"


def test_the_page_links_every_record_and_only_records():
    base = records_url()
    links = page_links()
    assert links, "book/decisions.md links no record"
    names = set()
    for url in links:
        assert url.startswith(base), f"book/decisions.md: {url} does not point into {base}"
        name = url[len(base):]
        assert name in RESERVED or (RECORDS / name).is_file(), f"book/decisions.md links {name}, which is no record"
        names.add(name)
    unlinked = [p.name for p in records() if p.name not in names]
    assert not unlinked, f"book/decisions.md does not link {unlinked}"


def test_the_page_is_in_the_back_matter():
    toc = yaml.safe_load((ROOT / "_toc.yml").read_text())
    back = next(p for p in toc["parts"] if p["caption"] == "Back matter")
    assert {"file": "book/decisions"} in back["chapters"]


def test_no_docstring_in_the_package_is_too_long():
    long = [f"{p.relative_to(ROOT)}:{name} ({n} lines)" for p in sorted(PACKAGE.rglob("*.py"))
            for name, n in docstrings(p) if n > MAX_DOCSTRING_LINES]
    assert not long, f"docstrings over {MAX_DOCSTRING_LINES} lines (the evidence goes to docs/decisions/): {long}"


def test_the_docstring_counter_sees_module_class_and_function_docstrings(tmp_path):
    p = tmp_path / "m.py"
    p.write_text('"""One."""\n\n\nclass A:\n    """Two\n\n    lines more.\n    """\n\n\ndef f():\n    """x"""\n')
    assert docstrings(p) == [("<module>", 1), ("A", 4), ("f", 1)]


def test_the_phrase_check_sees_a_phrase_split_over_two_lines():
    assert NOTEBOOK_PHRASES.search("chosen on grid\n# seed 0") and NOTEBOOK_PHRASES.search("see Issue 9")
    assert not NOTEBOOK_PHRASES.search("grid_seed=1, --grid-seed 1, the issues button")


def test_no_lab_notebook_in_the_package():
    found = []
    for p in package_files():
        try:
            text = p.read_text()
        except UnicodeDecodeError:
            continue
        found += [f"{p.relative_to(ROOT)}:{text.count(chr(10), 0, m.start()) + 1}: {m.group(0)!r}"
                  for m in NOTEBOOK_PHRASES.finditer(text)]
    assert not found, f"tuning history belongs in docs/decisions/, not in the package: {found}"


def test_every_pointer_in_the_package_names_a_record():
    pointers = sorted({(p.relative_to(ROOT), m.group(1)) for p in PACKAGE.rglob("*.py")
                       for m in re.finditer(r"docs/decisions/([\w.-]+\.md)", p.read_text())})
    broken = [f"{p}: {name}" for p, name in pointers if name not in RESERVED and not (RECORDS / name).is_file()]
    assert not broken, f"pointers to records that do not exist: {broken}"
