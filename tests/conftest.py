"""Shared fixtures: a private model cache per test session, and the executed book.

``make test`` runs pytest-xdist workers (``-n auto --dist loadgroup``): the quick book (every test that reads it)
is one group, the smoke execution another, so the two executions run side by side while the other tests fill in.
Each worker then uses one intra-op thread (``OMP_NUM_THREADS``/``UNLEARNLIB_THREADS``, inherited by the notebook
kernels): two processes of one thread each on two cores, instead of two-thread OpenMP barriers on busy cores.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

if os.environ.get("PYTEST_XDIST_WORKER"):  # before torch is imported anywhere in this worker
    os.environ["OMP_NUM_THREADS"] = os.environ["UNLEARNLIB_THREADS"] = "1"

import pytest

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tools"))

import book  # noqa: E402  (tools/book.py)

os.environ.setdefault("UNLEARNLIB_PROGRESS", "0")

BOOK_FIXTURES = {"executed_book", "glue", "built_book"}


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """One xdist group for the tests that read the executed book (it is executed once, in one worker), one for
    the smoke execution of every chapter; both first, so that the two long executions start at once, one per
    worker, and the other tests fill in around them."""
    rank = {}
    for item in items:
        if BOOK_FIXTURES & set(getattr(item, "fixturenames", ())):
            item.add_marker(pytest.mark.xdist_group("book"))
            rank[item.nodeid] = 0
        elif item.path.name == "test_book_smoke.py":
            item.add_marker(pytest.mark.xdist_group("smoke"))
            rank[item.nodeid] = 1
    items.sort(key=lambda item: rank.get(item.nodeid, 2))  # stable: the file order within each rank


@pytest.fixture(scope="session")
def executed_book() -> dict[str, float]:
    """Execute every notebook of the table of contents once per session (papermill), return seconds each.

    A failing cell raises here, so every test that reads the book fails with the cell's error.
    """
    return book.execute()


@pytest.fixture(scope="session")
def glue(executed_book):
    """``glue("01_backdoor_attacks")`` -> the glued values of that executed chapter."""

    def read(stem: str) -> dict:
        nb = next(nb for nb in book.notebooks() if nb.stem == stem)
        return book.read_glue(book.executed_path(nb))

    return read


@pytest.fixture(scope="session")
def built_book(executed_book) -> Path:
    """``jupyter-book build -W`` of the executed book once per session; the path of its index.html."""
    return book.html()
