"""Plots for the BAERASE chapters: per-class search scores, recovered-trigger galleries, unlearning curves."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import matplotlib.pyplot as plt
import torch
from matplotlib.figure import Figure

from . import style
from .images import imshow

style.apply()


def plot_search_scores(scores: Sequence[float], anomaly: Sequence[float], target: int,
                       threshold: float = 2.0) -> Figure:
    """Bar charts of the per-class attack rate of generated triggers and of its MAD anomaly index."""
    fig, axes = plt.subplots(1, 2, figsize=style.figsize(2.8))
    classes = list(range(len(scores)))
    colors = [style.ROLE["backdoored"] if c == target else style.ROLE["clean"] for c in classes]
    axes[0].bar(classes, [100 * s for s in scores], color=colors)
    axes[0].set(xlabel="candidate target class", ylabel="attack rate of $G_c$ (%)", xticks=classes)
    axes[1].bar(classes, anomaly, color=colors)
    axes[1].axhline(threshold, ls="--", c=style.BLACK, lw=1)
    axes[1].set(xlabel="candidate target class", ylabel="anomaly index", xticks=classes)
    fig.tight_layout()
    return fig


def plot_trigger_gallery(x: torch.Tensor, true_trigger: Any, recovered: dict[str, Any], n: int = 6) -> Figure:
    """Row 0: ``x`` with the true trigger; one row per recovered trigger distribution (``name -> trigger``)."""
    rows = [("true trigger", true_trigger.apply(x[:n]))] + [(k, t.apply(x[:n])) for k, t in recovered.items()]
    cell = style.PAGE_WIDTH_IN / n
    fig, axes = plt.subplots(len(rows), n, figsize=(style.PAGE_WIDTH_IN, (cell + 0.3) * len(rows)), squeeze=False)
    for r, (name, imgs) in enumerate(rows):
        for i in range(n):
            imshow(axes[r, i], imgs[i])
        axes[r, 0].set_title(name, fontsize=style.FONT_PT, loc="left")
    fig.tight_layout()
    return fig


def plot_unlearning_curves(curves: dict[str, dict[str, Sequence[float]]]) -> Figure:
    """Per-epoch clean loss, ascent loss and proxy ASR of one or several unlearning runs (``label -> curves``)."""
    fig, axes = plt.subplots(1, 3, figsize=style.figsize(2.8))
    for label, h in curves.items():
        for ax, key in zip(axes, ("clean_loss", "ascent_loss", "proxy_asr")):
            values = [100 * v for v in h[key]] if key == "proxy_asr" else list(h[key])
            ax.plot(range(len(values)), values, marker="o", label=label)
    for ax, title in zip(axes, ("clean term", "CE to target on G(z)\n(ascent)", "proxy asr,\nheld-out (%)")):
        ax.set(xlabel="epoch", title=title)
    axes[0].legend()
    fig.tight_layout()
    return fig
