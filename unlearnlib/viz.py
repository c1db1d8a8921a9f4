"""Figures shared by the chapters: image grids, trigger galleries, predictions under a trigger, metric tables."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import matplotlib.pyplot as plt
import pandas as pd
import torch
from torch import nn

from .attacks import TriggerArg, apply_trigger, make_trigger
from .data import Data
from .metrics import evaluate, logits

METRIC_LABELS = {"acc": "acc (%)", "asr": "asr (%)", "target_acc": "target_acc (%)", "ra": "ra (%)",
                 "asr_floor": "asr_floor (%)"}


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
    ax.set_title(title, fontsize=9)
    ax.axis("off")


def show_images(images: torch.Tensor, titles: Sequence[str] | None = None, ncols: int = 8,
                size: float = 1.4) -> plt.Figure:
    """A grid of (N, C, H, W) images with optional titles."""
    n = len(images)
    nrows = (n + ncols - 1) // ncols
    fig, axes = plt.subplots(nrows, ncols, figsize=(size * ncols, size * nrows + 0.3 * nrows), squeeze=False)
    for i, ax in enumerate(axes.flat):
        if i < n:
            imshow(ax, images[i], titles[i] if titles else "")
        else:
            ax.axis("off")
    fig.tight_layout()
    return fig


def trigger_gallery(x: torch.Tensor, triggers: Mapping[str, TriggerArg]) -> plt.Figure:
    """One row per trigger: its mask and pattern (when it has them), then ``x`` with the trigger applied."""
    n = len(x)
    fig, axes = plt.subplots(len(triggers) + 1, n + 2, figsize=(1.4 * (n + 2), 1.55 * (len(triggers) + 1)),
                             squeeze=False)
    for ax in axes[0, :2]:
        ax.axis("off")
    axes[0, 0].text(0.5, 0.5, "clean", ha="center", va="center", fontsize=11)
    for j in range(n):
        imshow(axes[0, j + 2], x[j])
    for i, (name, trig) in enumerate(triggers.items(), start=1):
        mask, pattern = getattr(trig, "mask", None), getattr(trig, "pattern", None)
        if mask is not None and pattern is not None:
            imshow(axes[i, 0], mask.expand_as(pattern), f"{name}: mask")
            imshow(axes[i, 1], pattern, "pattern")
        else:
            axes[i, 0].axis("off")
            axes[i, 1].axis("off")
            axes[i, 0].text(0.5, 0.5, name, ha="center", va="center", fontsize=11)
        for j, img in enumerate(apply_trigger(trig, x)):
            imshow(axes[i, j + 2], img)
    fig.tight_layout()
    return fig


def prediction_grid(models: Mapping[str, nn.Module], x: torch.Tensor, trigger: TriggerArg,
                    class_names: Sequence[str]) -> plt.Figure:
    """Triggered images with each model's prediction: green when it is the true digit, red otherwise."""
    xt = apply_trigger(trigger, x)
    preds = {name: logits(m, xt).argmax(1) for name, m in models.items()}
    fig, axes = plt.subplots(1, len(x), figsize=(1.45 * len(x), 2.1), squeeze=False)
    for j, ax in enumerate(axes[0]):
        imshow(ax, xt[j])
        lines = [f"{name}: {class_names[int(p[j])]}" for name, p in preds.items()]
        ax.set_title("\n".join(lines), fontsize=8)
    fig.tight_layout()
    return fig


def metrics_table(rows: Mapping[str, Mapping[str, float]], columns: Sequence[str] = tuple(METRIC_LABELS)
                  ) -> pd.DataFrame:
    """Rows of metric dicts (fractions) as a DataFrame in percent, rounded to 2 decimals."""
    df = pd.DataFrame({name: {METRIC_LABELS.get(c, c): 100 * float(r[c]) for c in columns if c in r}
                       for name, r in rows.items()}).T
    return df.round(2)


def strength_curve(model: nn.Module, test: Data, attack: str, param: str, values: Sequence[float], target: int,
                   base_params: Mapping[str, object] | None = None) -> list[float]:
    """asr of ``model`` when the attack's ``param`` (blended ``alpha``, badnets ``size``) varies at test time."""
    out = []
    for v in values:
        trig = make_trigger(attack, tuple(test.x.shape[1:]), **{**(base_params or {}), param: v})
        out.append(evaluate(model, test, trig, target)["asr"])
    return out


def plot_before_after(record: Mapping[str, object], ax: plt.Axes | None = None) -> plt.Figure:
    """Bars of acc, asr, target_acc and ra before and after a defense (a run record of the CLI's schema)."""
    fig, ax = (ax.figure, ax) if ax is not None else plt.subplots(figsize=(6, 2.8))
    keys = ["acc", "asr", "target_acc", "ra"]
    before, after = record["before"], record["after"]
    xs = range(len(keys))
    ax.bar([i - 0.2 for i in xs], [100 * before[k] for k in keys], 0.4, label="backdoored", color="tab:red")
    ax.bar([i + 0.2 for i in xs], [100 * after[k] for k in keys], 0.4, label=f"after {record['defense']}",
           color="tab:blue")
    ax.axhline(100 * before["asr_floor"], color="gray", ls=":", lw=1, label="asr floor")
    ax.set_xticks(list(xs), keys)
    ax.set_ylabel("%")
    ax.set_ylim(0, 105)
    ax.legend(fontsize=8, loc="center right")
    ax.set_title(f"{record['attack']} / {record['defense']}: {record['defense_seconds']:.2f} s, "
                 f"{record['unseen']} unseen samples", fontsize=10)
    fig.tight_layout()
    return fig
