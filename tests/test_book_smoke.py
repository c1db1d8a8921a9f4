"""Every chapter executes top to bottom under the ``smoke`` profile: the ``full`` code path (3x32x32 colour
images, PreAct-ResNet18 with BatchNorm, colour triggers and figures) at toy size, offline, on the CPU.

The executed copies go to ``_build/smoke`` (the book's own stay in ``_build/executed``); the glued numbers are
range-checked under ``quick`` only (the smoke numbers are not results).
"""

from __future__ import annotations

import json

import book


def test_every_chapter_executes_under_the_smoke_profile():
    dest = book.BUILD / "smoke"
    times = book.execute(profile="smoke", dest=dest)
    assert set(times) == {nb.stem for nb in book.notebooks()}
    print(f"smoke execution: {sum(times.values()):.1f} s ({times})")
    # the colour figures were drawn: chapter 1's trigger gallery holds PNG images of 3-channel data
    cells = json.loads(book.executed_path(book.ROOT / "book" / "01_backdoor_attacks.ipynb", dest).read_text())["cells"]
    pngs = [o for c in cells for o in c.get("outputs", []) if "image/png" in o.get("data", {})]
    assert pngs, "chapter 1 drew no figure under smoke"
    params = next(c for c in cells if "parameters" in c.get("metadata", {}).get("tags", []))
    injected = next(c for c in cells if "injected-parameters" in c.get("metadata", {}).get("tags", []))
    assert "smoke" in "".join(injected["source"]) and params is not injected
