"""Shared fixtures: a private model cache per test session, and the executed book."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tools"))

import book  # noqa: E402  (tools/book.py)

os.environ.setdefault("UNLEARNLIB_PROGRESS", "0")

BOOK_FIXTURES = {"executed_book", "glue", "built_book"}  # a test that uses one executes the chapters


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Mark every test that executes the chapters or builds the HTML ``book`` (``make test-unit`` leaves them out)."""
    for item in items:
        if BOOK_FIXTURES & set(getattr(item, "fixturenames", ())):
            item.add_marker(pytest.mark.book)


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
