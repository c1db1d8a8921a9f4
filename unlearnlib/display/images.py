"""Figures shared by the chapters: image grids, trigger galleries, predictions under a trigger, metric tables."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import matplotlib.pyplot as plt
import pandas as pd
import torch
from torch import nn

from ..ml.metrics import logits
from ..ml.triggers import TriggerArg, apply_trigger
from . import style

style.apply()

METRICS = ("acc", "asr", "target_acc", "ra", "asr_floor")


def imshow(ax: plt.Axes, img: torch.Tensor, title: str = "") -> None:
    """One ``(C, H, W)`` image in [0, 1] on ``ax``: greyscale (C = 1) with the grey colormap on a fixed 0-1 scale,
    colour (C = 3) channels-last with no colormap. The one place images are drawn."""
    img = img.detach().cpu().float().clamp(0, 1)
    if img.dim() != 3 or img.shape[0] not in (1, 3):
        raise ValueError(f"img must be a (1 or 3, H, W) image, got shape {tuple(img.shape)}")
    if img.shape[0] == 1:
        ax.imshow(img[0], cmap="gray", vmin=0, vmax=1)
    else:
        ax.imshow(img.permute(1, 2, 0).numpy())
    ax.set_title(title, fontsize=style.MIN_FONT_PT)
    ax.axis("off")


def _row_label(ax: plt.Axes, text: str) -> None:
    """A row's name, written vertically left of its first image."""
    ax.annotate(text, xy=(-0.08, 0.5), xycoords="axes fraction", ha="right", va="center", rotation=90,
                fontsize=style.FONT_PT)


def show_images(images: torch.Tensor, titles: Sequence[str] | None = None, ncols: int = 4) -> plt.Figure:
    """A grid of (N, C, H, W) images with optional titles, page-wide (``ncols`` images per row)."""
    n = len(images)
    ncols = min(ncols, n)
    nrows = (n + ncols - 1) // ncols
    size = style.PAGE_WIDTH_IN / ncols
    fig, axes = plt.subplots(nrows, ncols, figsize=(style.PAGE_WIDTH_IN, (size * 0.85 + 0.3) * nrows),
                             squeeze=False)
    for i, ax in enumerate(axes.flat):
        if i < n:
            imshow(ax, images[i], titles[i] if titles else "")
        else:
            ax.axis("off")
    fig.tight_layout()
    return fig


def trigger_gallery(x: torch.Tensor, triggers: Mapping[str, TriggerArg]) -> plt.Figure:
    """One row per trigger: its mask and pattern (when it has them), then ``x`` with the trigger applied.

    The figure is page-wide; rows are named on the left, columns ("mask", "pattern", "with the trigger") on top."""
    n = len(x)
    cell = style.PAGE_WIDTH_IN / (n + 2.4)
    fig, axes = plt.subplots(len(triggers) + 1, n + 2, squeeze=False,
                             figsize=(style.PAGE_WIDTH_IN, cell * (len(triggers) + 1) + 0.5))
    for ax in axes[0, :2]:
        ax.axis("off")
    _row_label(axes[0, 2], "clean")
    for j in range(n):
        imshow(axes[0, j + 2], x[j])
    for i, (name, trig) in enumerate(triggers.items(), start=1):
        mask, pattern = getattr(trig, "mask", None), getattr(trig, "pattern", None)
        if mask is not None and pattern is not None:
            imshow(axes[i, 0], mask.expand_as(pattern), "mask" if i == 1 else "")
            imshow(axes[i, 1], pattern, "pattern" if i == 1 else "")
        else:
            axes[i, 0].axis("off")
            axes[i, 1].axis("off")
        _row_label(axes[i, 0], name)
        for j, img in enumerate(apply_trigger(trig, x)):
            imshow(axes[i, j + 2], img)
    fig.tight_layout(pad=0.3, w_pad=0.1, h_pad=0.2)
    return fig


def prediction_grid(models: Mapping[str, nn.Module], x: torch.Tensor, trigger: TriggerArg,
                    class_names: Sequence[str]) -> plt.Figure:
    """Triggered images with each model's prediction: green when it is the true digit, red otherwise."""
    xt = apply_trigger(trigger, x)
    preds = {name: logits(m, xt).argmax(1) for name, m in models.items()}
    ncols = min(len(x), 5)
    nrows = (len(x) + ncols - 1) // ncols
    cell = style.PAGE_WIDTH_IN / ncols
    height = nrows * (0.6 * cell + 0.2 * (len(models) + 1))
    fig, axes = plt.subplots(nrows, ncols, figsize=(style.PAGE_WIDTH_IN, height), squeeze=False)
    for j, ax in enumerate(axes.flat):
        if j >= len(x):
            ax.axis("off")
            continue
        imshow(ax, xt[j])
        lines = [f"{name}: {class_names[int(p[j])]}" for name, p in preds.items()]
        ax.set_title("\n".join(lines), fontsize=style.MIN_FONT_PT)
    fig.tight_layout()
    return fig


def metrics_table(rows: Mapping[str, Mapping[str, float]], columns: Sequence[str] = METRICS, name: str = "model"
                  ) -> pd.DataFrame:
    """Rows of metric dicts (fractions) as a table in percent (:func:`unlearnlib.display.style.table`); ``name`` heads
    the row labels (``"model"``, ``"stage"``, ...)."""
    df = pd.DataFrame({label: {c: float(r[c]) for c in columns if c in r} for label, r in rows.items()}).T
    return style.table(df[[c for c in columns if c in df.columns]], index=name)


def glue_percents(prefix: str, metrics: Mapping[str, float], keys: Sequence[str] = ("acc", "asr", "target_acc"),
                  suffix: str = "") -> None:
    """Glue each metric of ``keys`` (a fraction in ``metrics``) in percent, rounded to two decimals, under the
    name ``prefix + key + suffix`` (``myst_nb.glue``, not displayed): the one way a chapter glues a row of metrics
    into its prose. Raises if ``metrics`` lacks one of ``keys``."""
    from myst_nb import glue  # lazy: the book's dependency, not the package's

    missing = [k for k in keys if k not in metrics]
    if missing:
        raise ValueError(f"metrics: no {missing} among {sorted(metrics)}")
    for k in keys:
        glue(f"{prefix}{k}{suffix}", round(100 * float(metrics[k]), 2), display=False)


def plot_before_after(record: Mapping[str, object], ax: plt.Axes | None = None) -> plt.Figure:
    """Bars of acc, asr, target_acc and ra before and after a defense (a run record of the CLI's schema)."""
    fig, ax = (ax.figure, ax) if ax is not None else plt.subplots(figsize=style.figsize(2.8))
    keys = ["acc", "asr", "target_acc", "ra"]
    before, after = record["before"], record["after"]
    xs = range(len(keys))
    ax.bar([i - 0.2 for i in xs], [100 * before[k] for k in keys], 0.4, label="backdoored",
           color=style.ROLE["backdoored"])
    ax.bar([i + 0.2 for i in xs], [100 * after[k] for k in keys], 0.4, label=f"after {record['defense']}",
           color=style.ROLE["defended"])
    ax.axhline(100 * before["asr_floor"], color=style.ROLE["reference"], ls=":", lw=1, label="asr floor")
    ax.set_xticks(list(xs), keys)
    ax.set_ylabel("rate (%)")
    ax.set_ylim(0, 105)
    ax.legend(loc="center right")
    ax.set_title(f"{record['attack']} / {record['defense']}: {record['defense_seconds']:.2f} s, "
                 f"{record['unseen']} unseen samples")
    fig.tight_layout()
    return fig
