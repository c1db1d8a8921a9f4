"""``python -m unlearnlib bench``: every attack x every defense x seeds (filled in by the benchmark issue)."""

from __future__ import annotations

import argparse
from collections.abc import Callable
from typing import Any


def add_bench_parser(sub: Any, add_common: Callable[[argparse.ArgumentParser], None]) -> None:
    p = sub.add_parser("bench", help="the benchmark grid")
    add_common(p)


def cmd_bench(args: argparse.Namespace) -> None:
    raise SystemExit("error: the benchmark grid is not built yet (issue 5)")
