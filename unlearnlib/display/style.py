"""The one plotting style of the book and the package: page-sized figures, readable text, colour-blind-safe colours.

Every plotting function of unlearnlib takes its colours, sizes and fonts from here, so a model, a defense or a
role ("backdoored", "after a defense", "the target class") has the same colour in every chapter.

- **Colours** are the Okabe–Ito palette *[ours: the choice]*, designed to stay distinguishable under the common
  colour-vision deficiencies (Okabe & Ito, "Color Universal Design", 2008); ``ROLE`` names what each colour means.
- **Size**: the book's text column is about ``PAGE_WIDTH_IN`` inches at ``DPI``. A figure no wider than that is
  shown at its natural size, so a font of ``MIN_FONT_PT`` points in the figure is at least that size on the page.
  :func:`check_figure` enforces both (tests call it on every figure the library draws).
- **Tables**: every numeric column's header carries its unit in parentheses (``acc (%)``, ``seconds (s)``,
  ``peak memory (MiB)``, ``ratio (×)``; one of ``UNITS``). ``HEADERS`` names the package's columns once;
  :func:`table` applies it to a DataFrame, turning rate columns from the package's fractions into percent.
  :func:`frame_html` (registered for IPython's HTML display by :func:`apply`) shows no index column: an index of
  row numbers (0…n) is dropped, a named one becomes the first column. :func:`check_table` is the rule the book's
  tests apply to every table of the executed chapters.
- :func:`apply` sets matplotlib's rcParams (idempotent); the plotting modules call it on import.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence

import matplotlib as mpl
import pandas as pd
from matplotlib.figure import Figure

from .. import defenses  # noqa: F401  (every defense registered, with the colour it names)
from ..core.registry import DEFENSES

# Okabe–Ito, in its usual order after black.
ORANGE, SKY_BLUE, GREEN, YELLOW, BLUE, VERMILLION, PURPLE = (
    "#E69F00", "#56B4E9", "#009E73", "#F0E442", "#0072B2", "#D55E00", "#CC79A7")
GREY = "#8C8C8C"
BLACK = "#000000"
CYCLE = (VERMILLION, BLUE, GREEN, ORANGE, PURPLE, SKY_BLUE, GREY, BLACK)  # ROLE order: backdoored, defended, ...

# What a colour means, the same in every chapter.
ROLE = {
    "backdoored": VERMILLION,  # the backdoored model, "before", the target class, the attack
    "defended": BLUE,  # after a defense / the edited model
    "repaired": GREEN,  # after the repair step
    "clean": GREY,  # the clean model, other classes, reference lines
    "reference": GREY,
}

# The palette by name: a defense names its colour on its class (``Defense.colour``); one without takes the next
# colour of CYCLE (:func:`defense_colour`).
PALETTE = {"orange": ORANGE, "sky blue": SKY_BLUE, "green": GREEN, "yellow": YELLOW, "blue": BLUE,
           "vermillion": VERMILLION, "purple": PURPLE, "grey": GREY, "black": BLACK}
MARKERS = ("o", "s", "^", "D", "v", "P", "X", "*")

PAGE_WIDTH_IN = 6.8  # the text column of the rendered book (~690 CSS px in a 1280 px window) at DPI
DPI = 100
MIN_FONT_PT = 9.0
FONT_PT = 10.0


def figsize(height: float = 2.8, width: float = PAGE_WIDTH_IN) -> tuple[float, float]:
    """(width, height) in inches of a figure for the page: page-wide unless ``width`` is smaller."""
    return min(width, PAGE_WIDTH_IN), height


def own_colour(name: str) -> str | None:
    """The colour a registered defense names on its class (``Defense.colour``), or None."""
    colour = getattr(DEFENSES.get(name), "colour", None) if name in DEFENSES else None
    if colour is not None and colour not in PALETTE:
        raise ValueError(f"defense {name!r} names colour {colour!r}; expected one of {', '.join(PALETTE)}")
    return None if colour is None else PALETTE[colour]


def defense_colour(name: str, known: Iterable[str] = ()) -> str:
    """The colour of a defense: its own (``Defense.colour``), else the palette in order among ``known``'s others."""
    if own_colour(name) is not None:
        return own_colour(name)  # type: ignore[return-value]
    others = [d for d in dict.fromkeys(known) if own_colour(d) is None]
    i = others.index(name) if name in others else len(others)
    return CYCLE[i % len(CYCLE)]


RC = {
    "figure.dpi": DPI,
    "savefig.dpi": DPI,
    "figure.figsize": (PAGE_WIDTH_IN, 2.8),
    "font.size": FONT_PT,
    "axes.titlesize": FONT_PT,
    "axes.labelsize": FONT_PT,
    "xtick.labelsize": MIN_FONT_PT,
    "ytick.labelsize": MIN_FONT_PT,
    "legend.fontsize": MIN_FONT_PT,
    "legend.title_fontsize": MIN_FONT_PT,
    "figure.titlesize": FONT_PT + 1,
    "axes.prop_cycle": mpl.cycler(color=list(CYCLE)),
    "axes.spines.top": False,
    "axes.spines.right": False,
    "image.cmap": "viridis",
}


# The unit of a table column, in parentheses at the end of its header. Counts name what they count.
UNITS = ("%", "s", "MiB", "×", "nats", "count", "images", "points")

# The package's column names -> (label, unit). A rate (unit "%") in a package frame is a fraction, as
# unlearnlib.ml.metrics returns it; its header says "(%)" and :func:`table` shows it in percent.
HEADERS = {
    "acc": ("acc", "%"), "asr": ("asr", "%"), "target_acc": ("target_acc", "%"), "ra": ("ra", "%"),
    "asr_floor": ("asr_floor", "%"), "der": ("der", "%"), "asr_fast": ("asr, fast", "%"),
    "asr_slow": ("asr, slow", "%"), "retuned": ("asr after retuning", "%"),
    "seconds": ("seconds", "s"), "defense_seconds": ("seconds", "s"), "edit_seconds": ("edit time", "s"),
    "solve_seconds": ("solve time", "s"), "peak_mib": ("peak memory", "MiB"), "ratio": ("ratio", "×"),
    "unseen": ("unseen", "images"), "params": ("parameters", "count"), "keys": ("keys", "count"),
    "threads": ("threads", "count"), "seeds": ("seeds", "count"),
}
RATE_COLUMNS = frozenset(k for k, (_, unit) in HEADERS.items() if unit == "%")


def header(name: str) -> str:
    """The header of column ``name``: ``label (unit)`` for the package's columns, ``name`` itself otherwise."""
    label, unit = HEADERS.get(name, (name, None))
    return label if unit is None else f"{label} ({unit})"


def table(df: pd.DataFrame, index: str | None = None, digits: int = 2) -> pd.DataFrame:
    """``df`` as the book shows it: the package's columns renamed by ``HEADERS`` (rates from fractions to
    percent), rounded to ``digits``; ``index`` names the row labels (shown as the first column). Installs the
    book's DataFrame display (:func:`apply`), so the table shows without an index column wherever it is called."""
    apply()
    out = df.copy()
    for c in out.columns:
        if c in RATE_COLUMNS:
            out[c] = 100 * pd.to_numeric(out[c])
    out = out.rename(columns=header).round(digits)
    return out.rename_axis(index) if index is not None else out


def frame_html(df: pd.DataFrame) -> str:
    """A DataFrame's HTML as Jupyter shows it, without an index column: an index of row numbers is dropped, a
    named index becomes the first column (one header row), missing values show as "—"."""
    if not (isinstance(df.index, pd.RangeIndex) and df.index.name is None):
        if all(n is not None for n in df.index.names):
            df = df.reset_index()
        else:  # unnamed row labels: shown, under an empty header (:func:`check_table` flags it)
            return df._repr_html_()
    return df.rename_axis(columns=None).to_html(
        index=False, notebook=True, border=0, na_rep="—", max_rows=pd.get_option("display.max_rows"),
        max_cols=pd.get_option("display.max_columns"))


_NUMBER = re.compile(r"[-+−]?(\d[\d,]*\.?\d*|\.\d+)(e[-+]?\d+)?( ± [\d.,e+-]+)?( \(\d+ failed\))?", re.I)
_MISSING = {"", "—", "-", "nan", "none", "inf", "-inf"}
_UNIT = re.compile(r"\(([^()]+)\)$")


def check_table(head: Sequence[str], rows: Sequence[Sequence[str]]) -> list[str]:
    """What is wrong with a shown table (header cells, rows of cell texts): an unnamed or 0…n index column, a
    numeric column whose header has no unit of ``UNITS`` in parentheses, a percent outside 0-100."""
    problems = []
    for j, h in enumerate(head):
        h = h.strip()
        cells = [r[j].strip() for r in rows if j < len(r)]
        if not h or h.lower() == "index":
            problems.append(f"column {j} has no name (an index column?): {cells[:4]}")
            continue
        present = [c for c in cells if c.lower() not in _MISSING]
        if not present or not all(_NUMBER.fullmatch(c) for c in present):
            continue
        unit = _UNIT.search(h)
        if unit is None or unit.group(1) not in UNITS:
            problems.append(f"numeric column {h!r} does not end with its unit in parentheses, one of "
                            f"{', '.join(UNITS)}")
        elif unit.group(1) == "%":
            values = [float(c.split(" ")[0].replace(",", "").replace("−", "-")) for c in present]
            if not all(0 <= v <= 100 for v in values):
                problems.append(f"column {h!r} is in percent but holds {min(values)}..{max(values)}")
    return problems


def apply() -> None:
    """Set the book's rcParams and, inside IPython, the HTML display of DataFrames (cheap and idempotent)."""
    mpl.rcParams.update(RC)
    try:
        from IPython import get_ipython
    except ImportError:  # pragma: no cover - IPython is there wherever a notebook runs
        return
    shell = get_ipython()
    if shell is not None:
        shell.display_formatter.formatters["text/html"].for_type(pd.DataFrame, frame_html)


def check_figure(fig: Figure, max_width_in: float = PAGE_WIDTH_IN + 0.05, min_font_pt: float = MIN_FONT_PT
                 ) -> list[str]:
    """What makes ``fig`` unreadable at page width: too wide, or a visible text smaller than ``min_font_pt``."""
    problems = []
    w, _ = fig.get_size_inches()
    if w > max_width_in:
        problems.append(f"figure is {w:.1f} in wide; the page is {PAGE_WIDTH_IN} in")
    for t in fig.findobj(lambda a: hasattr(a, "get_fontsize") and hasattr(a, "get_text")):
        if t.get_visible() and t.get_text().strip() and t.get_fontsize() < min_font_pt - 1e-6:
            problems.append(f"text {t.get_text()[:30]!r} is {t.get_fontsize():.1f} pt (< {min_font_pt})")
    return problems
