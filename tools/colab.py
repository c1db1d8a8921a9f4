"""Write each chapter's Colab edition: the notebook a reader opens in Colab or Jupyter, which shows the numbers.

    python tools/colab.py          # book/NN_title.ipynb -> colab/NN_title.ipynb (committed; a test checks they agree)

The built book glues numbers into its prose with MyST roles that only Jupyter Book renders. In the Colab edition
of a chapter (one source of truth: it is generated from the chapter):

- every markdown cell that quotes a number becomes a small code cell ``show(r'''...''')``, its code folded away
  (Colab's form view, Jupyter's hidden source), that renders the same paragraph with the values the cells above it
  computed (:mod:`unlearnlib.display.prose`); the chapter's code glues
  with ``unlearnlib.display.prose.glue`` instead of ``myst_nb.glue``;
- ``{cite}`` roles become "(Author, year)" from ``book/references.bib``; ``{admonition}`` blocks become quotes;
  the Colab badge points to an absolute image; relative paths to ``results/`` become the repository's raw files;
- the first cell installs the package in Colab, says how to choose the profile and a GPU, and offers to keep the
  trained models on Google Drive across runtime resets (opt-in).
"""

from __future__ import annotations

import re
import sys
from pathlib import Path

import nbformat

ROOT = Path(__file__).resolve().parents[1]
OUT = ROOT / "colab"
sys.path.insert(0, str(ROOT / "tools"))

import book  # noqa: E402  (tools/book.py: the chapters, their tags and the repository)

ROLE = re.compile(r"\{glue:text\}`")
CITE = re.compile(r"\{cite(?::[pt])?\}`([^`]+)`")
ADMONITION = re.compile(r"^(`{3,4}|:::)\{admonition\}\s*(.*?)\n(.*?)^\1\s*$", re.M | re.S)
BADGE_IMAGE = "https://colab.research.google.com/assets/colab-badge.svg"
TITLE = "The text, with the numbers the cells above computed"
HIDDEN = {"cellView": "form", "jupyter": {"source_hidden": True}}  # Colab and Jupyter show the output, not the code


def raw_base() -> str:
    repo = book.repository()
    return (f"https://raw.githubusercontent.com/{repo['url'].removeprefix('https://github.com/')}/"
            f"{repo.get('branch', 'main')}")


def citations() -> dict[str, str]:
    """``key -> "Author et al., year"`` for every entry of ``book/references.bib``."""
    from pybtex.database import parse_file

    out = {}
    for key, entry in parse_file(str(ROOT / "book" / "references.bib")).entries.items():
        people = entry.persons.get("author", [])
        last = " ".join(people[0].last_names) if people else key
        names = last if len(people) == 1 else f"{last} and {' '.join(people[1].last_names)}" if len(people) == 2 \
            else f"{last} et al."
        out[key] = f"{names}, {entry.fields.get('year', 'n.d.')}"
    return out


def plain_markdown(text: str, cites: dict[str, str]) -> str:
    """MyST that Colab does not render, in plain markdown: citations and admonitions."""
    text = CITE.sub(lambda m: "(" + "; ".join(cites.get(k.strip(), k.strip()) for k in m.group(1).split(",")) + ")",
                    text)
    return ADMONITION.sub(lambda m: f"> **{m.group(2).strip()}**\n>\n" + "\n".join(
        f"> {line}" if line else ">" for line in m.group(3).rstrip("\n").split("\n")) + "\n", text)


SETUP = '''# Setup. In Colab this installs unlearnlib from the book's repository (about two minutes). Choose the profile
# in the parameters cell below: "quick" runs on a CPU (mnist5k, a small CNN); "full" trains PreAct-ResNet18
# on CIFAR-10 and needs a GPU (Runtime -> Change runtime type -> GPU). Trained models are cached, by default
# where a Colab runtime reset erases them; set keep_models_on_drive = True to keep them on your Google Drive.
import os
import subprocess
import sys
import time

keep_models_on_drive = False
if "google.colab" in sys.modules:
    subprocess.run([sys.executable, "-m", "pip", "install", "-q", "{package}"], check=True)
    if keep_models_on_drive:
        from google.colab import drive

        drive.mount("/content/drive")
        os.environ["UNLEARNLIB_CACHE"] = "/content/drive/MyDrive/unlearnlib-cache"
from unlearnlib.display.prose import glue, show  # the numbers of the prose, computed by the cells you run

chapter_start = time.perf_counter()'''


def edition(nb_path: Path) -> nbformat.NotebookNode:
    """The Colab edition of the chapter at ``nb_path`` (module docstring)."""
    nb = nbformat.read(nb_path, as_version=4)
    cites, repo = citations(), book.repository()
    package = f"git+{repo['url']}.git@{repo.get('branch', 'main')}"
    cells = []
    for cell in nb.cells:
        tags = set(cell.metadata.get("tags", []))
        if book.SETUP_TAG in tags:
            cells.append(nbformat.v4.new_code_cell(SETUP.replace("{package}", package)))
        elif book.BADGE_TAG in tags:
            url = f"https://colab.research.google.com/github/{repo['url'].removeprefix('https://github.com/')}" \
                  f"/blob/{repo.get('branch', 'main')}/colab/{nb_path.name}"
            cells.append(nbformat.v4.new_markdown_cell(f"[![Open in Colab]({BADGE_IMAGE})]({url})"))
        elif book.TIMING_TAG in tags:
            continue
        elif cell.cell_type == "code":
            source = cell.source.replace("from myst_nb import glue\n", "").replace("from myst_nb import glue", "")
            source = re.sub(r'"\.\./results/', f'"{raw_base()}/results/', source)
            cells.append(nbformat.v4.new_code_cell(source.strip("\n"), metadata=dict(cell.metadata)))
        else:
            text = plain_markdown(cell.source, cites)
            if ROLE.search(text):
                quoted = text.replace("'''", "\\'\\'\\'")
                source = f"#@title {TITLE}\nshow(r'''{quoted}''')"
                cells.append(nbformat.v4.new_code_cell(source, metadata=dict(HIDDEN)))
            else:
                cells.append(nbformat.v4.new_markdown_cell(text))
    for i, c in enumerate(cells):
        c["id"] = f"{nb_path.stem[:2]}-{i:03d}"
    out = nbformat.v4.new_notebook(cells=cells, metadata=nb.metadata)
    nbformat.validator.normalize(out)
    return out


def write_all(dest: Path = OUT) -> list[Path]:
    """Write the Colab edition of every chapter of the table of contents into ``dest``; returns the paths."""
    dest.mkdir(exist_ok=True)
    paths = []
    for nb_path in book.notebooks():
        path = dest / nb_path.name
        nbformat.write(edition(nb_path), path)
        paths.append(path)
    return paths


if __name__ == "__main__":
    for p in write_all():
        print(f"wrote {p.relative_to(ROOT)}")
