"""Execute the book's notebooks with papermill and build the HTML with Jupyter Book 1.x.

    python tools/book.py execute [NAME ...] [--profile quick]   # run notebooks into _build/executed
    python tools/book.py html                                   # jupyter-book build -W of the executed copies
    python tools/book.py all                                    # both (what `make book` does)
    python tools/book.py sync-setup                             # rewrite every notebook's generated cells

The source tree (``_config.yml``, ``_toc.yml``, ``book/``) is staged into ``_build/executed`` and each notebook
listed in ``_toc.yml`` is executed there by papermill (kernel ``python3``, working directory = the notebook's
source folder, parameter ``profile`` and the profile's :data:`PROFILE_PARAMETERS`). Jupyter Book then renders that
staged tree with execution off, so what the book shows is exactly what the executed copies hold. A failing cell
raises and stops the build.

Plumbing is hidden with Jupyter Book's own cell tag ``remove-cell`` and kept in the notebooks: the generated
Colab setup cell (first) and timing cell (last) carry it in the sources, papermill's injected-parameters cell
gets it in the executed copy. The chapter's own ``parameters`` cell stays visible. After execution every output
is checked (:func:`output_problems`): a warning, a traceback, stderr or a local path fails the build.
"""

from __future__ import annotations

import argparse
import json
import os
import re
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
REMOVE = "remove-cell"  # Jupyter Book 1.x: the cell (input and output) is not rendered
SETUP_TAG, BADGE_TAG, TIMING_TAG = "setup", "colab-badge", "timing"  # the cells sync-setup generates
CELL_TIMEOUT_S = 900  # a cell that runs this long fails the build (the slowest quick cell: ~100 s)
# Parameters a profile's run gives a chapter besides ``profile`` (each must be a name of that chapter's
# ``parameters`` cell). [ours] smoke runs the code, it does not measure: chapter 8 runs one of its failure cases
# again, not three (each is a stored quick-profile cell: the same code every time); chapter 1's
# asr map at every 8th position, not every 2nd (on 32x32 images and PreAct-ResNet18 the 2-pixel map took 12.7 s of
# the cell, the 8-pixel one 1.4 s: the recoveries' heatmaps have the same setting, ``SMOKE_RECOVER``);
# chapter 7's cost table with PreAct-ResNet18 at 1/8 width, not full width (the same code, 5 s instead of 11 s).
PROFILE_PARAMETERS: dict[str, dict[str, dict[str, Any]]] = {"smoke": {
    "01_backdoor_attacks": {"position_stride": 8},
    "07_comparison": {"scaling_models": ["cnn", "preact-resnet18-w8"]},
    "08_does_it_hold": {"cases": 1},
}}
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
        parameters = {"profile": profile, **PROFILE_PARAMETERS.get(profile, {}).get(nb.stem, {})}
        pm.execute_notebook(str(nb), str(out), parameters=parameters, kernel_name="python3",
                            cwd=str(nb.parent), progress_bar=False, log_output=False,
                            execution_timeout=CELL_TIMEOUT_S)
        times[nb.stem] = time.perf_counter() - start
        hide_injected_parameters(out)
        problems = output_problems(out)
        if problems:
            raise SystemExit(f"error: {nb.relative_to(ROOT)} printed what a reader must not see:\n  "
                             + "\n  ".join(problems))
        print(f"executed {nb.relative_to(ROOT)} in {times[nb.stem]:.1f} s", flush=True)
    print(f"executed {len(times)} notebooks in {sum(times.values()):.1f} s", flush=True)
    return times


def hide_injected_parameters(nb_path: Path) -> None:
    """Tag papermill's ``injected-parameters`` cell ``remove-cell`` in an executed copy (the values it injects
    are the defaults the visible ``parameters`` cell already shows, or the build's own choice)."""
    nb = json.loads(nb_path.read_text())
    changed = False
    for cell in nb["cells"]:
        tags = cell.setdefault("metadata", {}).setdefault("tags", [])
        if "injected-parameters" in tags and REMOVE not in tags:
            tags.append(REMOVE)
            changed = True
    if changed:
        tmp = nb_path.with_suffix(".ipynb.tmp")
        tmp.write_text(json.dumps(nb, indent=1, ensure_ascii=False) + "\n")
        tmp.replace(nb_path)


# What a reader of the rendered book must never see in an output: Python's warnings (``path:line: XWarning:``),
# tracebacks, and paths of the machine that built the book.
WARNING_RE = re.compile(r"\b\w*(Warning|Error)\b:|^\s*warnings\.warn\(|Traceback \(most recent call last\)",
                        re.MULTILINE)


def local_paths() -> list[str]:
    """Path prefixes of the build machine that must not appear in the book (repository, home, temp, venv)."""
    import tempfile

    found = {str(ROOT), str(Path.home()), tempfile.gettempdir(), sys.prefix, os.path.realpath(sys.prefix),
             "/tmp/", "site-packages", "dist-packages"}
    return sorted(p for p in found if p and p != "/")


def _output_text(o: dict[str, Any]) -> str:
    if o.get("output_type") == "stream":
        text = o.get("text", "")
    elif o.get("output_type") == "error":
        text = "\n".join([f"{o.get('ename')}: {o.get('evalue')}", *o.get("traceback", [])])
    else:
        data = o.get("data", {})
        text = [v for k, v in data.items() if k.startswith("text/") or k.endswith("json")]
        text = "\n".join("".join(t) if isinstance(t, list) else str(t) for t in text)
    return "".join(text) if isinstance(text, list) else str(text)


def output_problems(nb_path: Path) -> list[str]:
    """Every output of an executed notebook that shows a warning, an error, stderr or a local path."""
    cells = json.loads(nb_path.read_text())["cells"]
    paths = local_paths()
    problems = []
    for i, cell in enumerate(cells):
        if REMOVE in cell.get("metadata", {}).get("tags", []):
            continue
        for o in cell.get("outputs", []):
            where = f"cell {i}"
            if o.get("output_type") == "error":
                problems.append(f"{where}: {o.get('ename')}: {o.get('evalue')}")
                continue
            if o.get("output_type") == "stream" and o.get("name") == "stderr":
                problems.append(f"{where}: stderr: {_output_text(o).strip()[:300]!r}")
                continue
            text = _output_text(o)
            m = WARNING_RE.search(text)
            if m:
                line = text[max(0, m.start() - 120): m.end() + 120].strip()
                problems.append(f"{where}: a warning or traceback: {line!r}")
            for p in paths:
                if p in text:
                    problems.append(f"{where}: the local path {p!r} is shown")
    return problems


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


def repository() -> dict[str, str]:
    """``repository`` of ``_config.yml``: the one place the book's repository URL and branch live."""
    return yaml.safe_load((ROOT / "_config.yml").read_text())["repository"]


def chapter_key(nb: Path) -> str:
    """The glue prefix of a chapter: ``book/01_backdoor_attacks.ipynb`` -> ``ch01``."""
    m = re.match(r"(\d+)_", nb.stem)
    return f"ch{m.group(1)}" if m else nb.stem.replace("-", "_")


def setup_cell_source() -> str:
    """The Colab-aware first cell, generated from ``repository`` in ``_config.yml``.

    It also starts the chapter's clock, read by the last cell (:func:`timing_cell_source`)."""
    repo = repository()
    url = f"git+{repo['url']}.git@{repo.get('branch', 'main')}"
    return (
        "# Setup (hidden in the rendered book): in Colab, install unlearnlib from the book's repository and\n"
        "# myst-nb (for `glue`); locally this cell only starts the chapter's clock.\n"
        "import subprocess\n"
        "import sys\n"
        "import time\n"
        "\n"
        "if \"google.colab\" in sys.modules:\n"
        f"    packages = [\"{url}\", \"myst-nb\"]\n"
        "    subprocess.run([sys.executable, \"-m\", \"pip\", \"install\", \"-q\", *packages], check=True)\n"
        "chapter_start = time.perf_counter()"
    )


def timing_cell_source(nb: Path) -> str:
    """The hidden last cell: glue the chapter's run time, first cell to last, as ``chNN_run_seconds``."""
    return (
        "# Timing (hidden in the rendered book): this chapter's run time, for the line under its title.\n"
        "from myst_nb import glue\n"
        "\n"
        f"glue(\"{chapter_key(nb)}_run_seconds\", round(time.perf_counter() - chapter_start), display=False)"
    )


def badge_cell_source(nb: Path) -> str:
    """The line under a chapter's title: a "Launch in Colab" badge, which opens the chapter's Colab edition
    (``colab/``, :mod:`colab`: the prose's numbers shown), and the chapter's measured CPU run time."""
    repo = repository()
    colab = (f"https://colab.research.google.com/github/{repo['url'].removeprefix('https://github.com/')}"
             f"/blob/{repo.get('branch', 'main')}/colab/{nb.name}")
    badge = os.path.relpath(ROOT / "book" / "images" / "colab-badge.svg", nb.parent)
    return (f"[![Launch in Colab]({badge})]({colab}) &nbsp; runs on a CPU in about "
            f"{{glue:text}}`{chapter_key(nb)}_run_seconds` s")


def sync_setup(paths: list[Path] | None = None) -> None:
    """Write the generated cells into every notebook under book/: the hidden setup cell (first), the badge
    line (right after the title cell) and the hidden timing cell (last). Idempotent."""
    import nbformat

    for nb_path in paths or sorted((ROOT / "book").glob("*.ipynb")):
        nb = nbformat.read(nb_path, as_version=4)
        generated = {BADGE_TAG, TIMING_TAG}
        cells = [c for c in nb.cells if not generated & set(c.metadata.get("tags", []))]
        first = cells[0] if cells else None
        setup = {"tags": [SETUP_TAG, REMOVE]}
        if first is not None and first.cell_type == "code" and "google.colab" in first.source:
            first.source, first.metadata = setup_cell_source(), {**first.metadata, **setup}
        else:
            cells.insert(0, nbformat.v4.new_code_cell(setup_cell_source(), metadata=setup))
        title = next((i for i, c in enumerate(cells) if c.cell_type == "markdown" and c.source.startswith("# ")),
                     0)
        cells.insert(title + 1, nbformat.v4.new_markdown_cell(badge_cell_source(nb_path),
                                                              metadata={"tags": [BADGE_TAG]}))
        cells.append(nbformat.v4.new_code_cell(timing_cell_source(nb_path), metadata={"tags": [TIMING_TAG, REMOVE]}))
        old = {c.get("id"): c for c in nb.cells}
        for c in cells:  # keep the ids of cells that were there, so a re-sync changes nothing
            for o in old.values():
                if o.cell_type == c.cell_type and o.source == c.source and o.metadata == c.metadata:
                    c["id"] = o["id"]
        nb.cells = cells
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
