"""The one plotting style of the book and the package: page-sized figures, readable text, colour-blind-safe colours.

Every plotting function of unlearnlib takes its colours, sizes and fonts from here, so a model, a defense or a
role ("backdoored", "after a defense", "the target class") has the same colour in every chapter.

- **Colours** are the Okabe–Ito palette *[ours: the choice]*, designed to stay distinguishable under the common
  colour-vision deficiencies (Okabe & Ito, "Color Universal Design", 2008); ``ROLE`` names what each colour means.
- **Size**: the book's text column is about ``PAGE_WIDTH_IN`` inches at ``DPI``. A figure no wider than that is
  shown at its natural size, so a font of ``MIN_FONT_PT`` points in the figure is at least that size on the page.
  :func:`check_figure` enforces both (tests call it on every figure the library draws).
- **Tables**: a DataFrame whose index is only its row numbers (0…n) is shown without that meaningless column
  (:func:`frame_html`, registered for IPython's HTML display by :func:`apply`); a named index stays.
- :func:`apply` sets matplotlib's rcParams (idempotent); the plotting modules call it on import.
"""

from __future__ import annotations

from collections.abc import Iterable

import matplotlib as mpl
import pandas as pd
from matplotlib.figure import Figure

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

# One colour per defense (the registry's names); a defense not listed takes the next free colour of CYCLE.
DEFENSE = {"none": BLACK, "agme-bdk": BLUE, "agme": SKY_BLUE, "agme-repair": GREEN, "baerase": ORANGE,
           "nc-unlearn": PURPLE, "finetune": GREY, "fine-pruning": VERMILLION}
MARKERS = ("o", "s", "^", "D", "v", "P", "X", "*")

PAGE_WIDTH_IN = 6.8  # the text column of the rendered book (~690 CSS px in a 1280 px window) at DPI
DPI = 100
MIN_FONT_PT = 9.0
FONT_PT = 10.0


def figsize(height: float = 2.8, width: float = PAGE_WIDTH_IN) -> tuple[float, float]:
    """(width, height) in inches of a figure for the page: page-wide unless ``width`` is smaller."""
    return min(width, PAGE_WIDTH_IN), height


def defense_colour(name: str, known: Iterable[str] = ()) -> str:
    """The colour of a defense: fixed for the registry's defenses, then the palette in order for others."""
    if name in DEFENSE:
        return DEFENSE[name]
    others = [d for d in dict.fromkeys(known) if d not in DEFENSE]
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


def frame_html(df: pd.DataFrame) -> str:
    """A DataFrame's HTML as Jupyter shows it, without the index when the index is only row numbers."""
    if isinstance(df.index, pd.RangeIndex) and df.index.name is None:
        return df.to_html(index=False, notebook=True, border=0, max_rows=pd.get_option("display.max_rows"),
                          max_cols=pd.get_option("display.max_columns"))
    return df._repr_html_()


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
