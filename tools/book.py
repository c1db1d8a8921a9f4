"""Execute the book's notebooks with papermill and build the HTML with Jupyter Book 1.x.

    python tools/book.py execute [NAME ...] [--profile quick]   # run notebooks into _build/executed
    python tools/book.py html                                   # jupyter-book build -W of the executed copies
    python tools/book.py all                                    # both (what `make book` does)
    python tools/book.py sync-setup                             # rewrite every notebook's Colab setup cell

The source tree (``_config.yml``, ``_toc.yml``, ``book/``) is staged into ``_build/executed`` and each notebook
listed in ``_toc.yml`` is executed there by papermill (kernel ``python3``, working directory = the notebook's
source folder, parameter ``profile``). Jupyter Book then renders that staged tree with execution off, so what
the book shows is exactly what the executed copies hold. A failing cell raises and stops the build.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parents[1]
BUILD = ROOT / "_build"
EXECUTED = BUILD / "executed"
HTML = BUILD / "html"
CELL_TIMEOUT_S = 900  # a cell that runs this long fails the build (the slowest quick cell: ~100 s)
POLL_SLICE_S = 1.0


def poll_in_slices() -> None:
    """Make the notebook client's channels wait for kernel messages in 1-second polls.

    zmq.asyncio sockets can miss the wake-up of an arriving message (pyzmq issues #1558, #2173): the message is
    only seen when the poll times out. We saw it here: the kernel answered a cell in 0.2 s and papermill went
    on only at the 900 s cell timeout, and a wait without a timeout (the IOPub channel) would hang for ever.
    Each 1 s poll ends with a real check of the socket, so a missed wake-up costs at most a second.
    """
    from queue import Empty

    from jupyter_client.channels import AsyncZMQSocketChannel

    if getattr(AsyncZMQSocketChannel.get_msg, "sliced", False):
        return

    async def get_msg(self: Any, timeout: float | None = None) -> dict[str, Any]:
        deadline = None if timeout is None else time.monotonic() + timeout
        while True:
            left = None if deadline is None else max(0.0, deadline - time.monotonic())
            wait = POLL_SLICE_S if left is None else min(POLL_SLICE_S, left)
            if await self.socket.poll(int(wait * 1000)):
                return await self._recv()
            if left is not None and left <= POLL_SLICE_S:
                raise Empty

    get_msg.sliced = True  # type: ignore[attr-defined]
    AsyncZMQSocketChannel.get_msg = get_msg


def toc_files() -> list[str]:
    """Every document of ``_toc.yml`` (root first), as repository-relative paths without suffix."""
    toc = yaml.safe_load((ROOT / "_toc.yml").read_text())
    files = [toc["root"]]

    def walk(node: Any) -> None:
        if isinstance(node, dict):
            if "file" in node:
                files.append(node["file"])
            for v in node.values():
                walk(v)
        elif isinstance(node, list):
            for v in node:
                walk(v)

    walk({k: v for k, v in toc.items() if k != "root"})
    return files


def notebooks() -> list[Path]:
    """The notebooks of the table of contents, in reading order."""
    return [ROOT / f"{f}.ipynb" for f in toc_files() if (ROOT / f"{f}.ipynb").exists()]


def stage(dest: Path = EXECUTED) -> None:
    """Copy the book's sources (not the notebooks' executed copies) into the build tree ``dest``."""
    dest.mkdir(parents=True, exist_ok=True)
    for name in ("_config.yml", "_toc.yml"):
        shutil.copy2(ROOT / name, dest / name)
    for src in (ROOT / "book").rglob("*"):
        if src.is_file() and src.suffix != ".ipynb" and ".ipynb_checkpoints" not in src.parts:
            dst = dest / src.relative_to(ROOT)
            dst.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(src, dst)


def executed_path(nb: Path, dest: Path = EXECUTED) -> Path:
    return dest / nb.relative_to(ROOT)


def execute(names: list[str] | None = None, profile: str = "quick", dest: Path = EXECUTED) -> dict[str, float]:
    """Execute the named notebooks (default: all) with papermill into the build tree ``dest`` (the book's is
    ``_build/executed``; another profile's run goes elsewhere, e.g. ``_build/smoke``); returns seconds each."""
    import papermill as pm

    poll_in_slices()
    os.environ.setdefault("UNLEARNLIB_PROGRESS", "0")  # no progress bars in the rendered book
    os.environ.setdefault("MPLBACKEND", "module://matplotlib_inline.backend_inline")
    stage(dest)
    chosen = [nb for nb in notebooks() if not names or nb.stem in names or nb.name in names]
    if names and len(chosen) != len(set(names)):
        known = ", ".join(nb.stem for nb in notebooks())
        raise SystemExit(f"error: unknown notebook in {names}; the table of contents has: {known}")
    times: dict[str, float] = {}
    for nb in chosen:
        out = executed_path(nb, dest)
        out.parent.mkdir(parents=True, exist_ok=True)
        start = time.perf_counter()
        pm.execute_notebook(str(nb), str(out), parameters={"profile": profile}, kernel_name="python3",
                            cwd=str(nb.parent), progress_bar=False, log_output=False,
                            execution_timeout=CELL_TIMEOUT_S)
        times[nb.stem] = time.perf_counter() - start
        print(f"executed {nb.relative_to(ROOT)} in {times[nb.stem]:.1f} s", flush=True)
    print(f"executed {len(times)} notebooks in {sum(times.values()):.1f} s", flush=True)
    return times


def html() -> Path:
    """``jupyter-book build -W`` of the staged, executed tree into ``_build/html``."""
    missing = [nb for nb in notebooks() if not executed_path(nb).exists()]
    if missing:
        raise SystemExit(f"error: execute the notebooks first; missing: {[str(m) for m in missing]}")
    stage()
    jb = Path(sys.executable).with_name("jupyter-book")
    cmd = [str(jb) if jb.exists() else "jupyter-book", "build", str(EXECUTED), "--path-output", str(ROOT), "-W",
           "--keep-going"]
    subprocess.run(cmd, check=True)
    index = HTML / "index.html"
    print(f"the book is at {index}")
    return index


def read_glue(nb_path: Path) -> dict[str, Any]:
    """The values glued (``myst_nb.glue``) in an executed notebook, parsed from their text form."""
    cells = json.loads(nb_path.read_text())["cells"]
    out: dict[str, Any] = {}
    for cell in cells:
        for o in cell.get("outputs", []):
            name = o.get("metadata", {}).get("scrapbook", {}).get("name")
            if name is None:
                continue
            data = o.get("data", {})
            text = next((v for k, v in data.items() if k.endswith("text/plain")), None)
            text = "".join(text) if isinstance(text, list) else text
            try:
                out[name] = json.loads(text) if text is not None else data
            except (TypeError, json.JSONDecodeError):
                out[name] = text.strip("'\"") if isinstance(text, str) else data
    return out


def setup_cell_source() -> str:
    """The Colab-aware first cell, generated from ``repository`` in ``_config.yml`` (the one place it lives)."""
    repo = yaml.safe_load((ROOT / "_config.yml").read_text())["repository"]
    url = f"git+{repo['url']}.git@{repo.get('branch', 'main')}"
    return (
        "# Setup: in Colab, install unlearnlib from the book's repository; locally this cell does nothing.\n"
        "import subprocess\n"
        "import sys\n"
        "\n"
        "if \"google.colab\" in sys.modules:\n"
        f"    subprocess.run([sys.executable, \"-m\", \"pip\", \"install\", \"-q\", \"{url}\"], check=True)"
    )


def sync_setup() -> None:
    """Rewrite the first cell of every notebook under book/ to the canonical setup cell."""
    import nbformat

    src = setup_cell_source()
    for nb_path in sorted((ROOT / "book").glob("*.ipynb")):
        nb = nbformat.read(nb_path, as_version=4)
        first = nb.cells[0] if nb.cells else None
        if first is not None and first.cell_type == "code" and "google.colab" in first.source:
            first.source = src
        else:
            nb.cells.insert(0, nbformat.v4.new_code_cell(src, metadata={"tags": ["setup"]}))
        nbformat.validator.normalize(nb)
        nbformat.write(nb, nb_path)
        print(f"synced {nb_path.relative_to(ROOT)}")


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("command", choices=["execute", "html", "all", "sync-setup"])
    p.add_argument("names", nargs="*", help="notebook names (stems) to execute; default all")
    p.add_argument("--profile", default="quick")
    p.add_argument("--dest", type=Path, default=EXECUTED, help="build tree of the executed copies (execute only)")
    a = p.parse_args(argv)
    if a.command == "sync-setup":
        sync_setup()
    if a.command in ("execute", "all"):
        execute(a.names, a.profile, a.dest)
    if a.command in ("html", "all"):
        html()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
