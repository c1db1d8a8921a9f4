"""Figures of the model-editing chapters (04-06); their computations are :mod:`unlearnlib.experiment.studies`."""

from __future__ import annotations

from typing import Any

import matplotlib.pyplot as plt
import pandas as pd
import torch
from torch import nn

from ..experiment.scenario import Scenario
from ..experiment.studies import bdk_edit
from ..ml.edit import layer_keys, weight_matrix
from ..ml.metrics import logits, per_class_accuracy
from ..models import get_layer
from . import style
from .images import imshow
from .widgets import live

style.apply()


def plot_sample_efficiency(df: pd.DataFrame, before: dict[str, float]) -> plt.Figure:
    fig, ax = plt.subplots(1, 2, figsize=style.figsize(3.0))
    ax[0].plot(df["unseen"], 100 * df["asr"], "o-", color=style.ROLE["defended"], label="asr after edit")
    ax[0].axhline(100 * before["asr"], ls=":", color=style.ROLE["backdoored"], label="asr before")
    ax[0].axhline(100 * before["asr_floor"], ls="--", color=style.ROLE["clean"], label="asr floor (clean model)")
    ax[1].plot(df["unseen"], 100 * df["acc"], "o-", color=style.ROLE["defended"], label="acc after edit")
    ax[1].axhline(100 * before["acc"], ls=":", color=style.ROLE["backdoored"], label="acc before")
    for a, t in zip(ax, ("attack success rate (%)", "clean accuracy (%)")):
        a.set_xscale("log")
        a.set_xlabel("unseen samples N")
        a.set_title(t)
        a.legend()
    fig.tight_layout()
    return fig


def plot_edit_picture(before: nn.Module, after: nn.Module, sc: Scenario, layer: str, n: int = 10) -> plt.Figure:
    """What an edit changes: layer outputs W k (clean), W k' (triggered) and W' k' (triggered, edited)."""
    x = sc.defender(n).x
    xt = sc.trigger.apply(x)
    lb, la = get_layer(before, layer), get_layer(after, layer)
    k, kt = layer_keys(before, lb, x), layer_keys(before, lb, xt)
    w, w2 = weight_matrix(lb), weight_matrix(la)
    delta = (w2 - w).norm(dim=0)
    fig, ax = plt.subplots(1, 3, figsize=style.figsize(3.0))
    ax[0].scatter((k @ w.T).flatten(), (kt @ w.T).flatten(), s=2, alpha=0.4, label="before: W k'")
    ax[0].scatter((k @ w.T).flatten(), (kt @ w2.T).flatten(), s=2, alpha=0.4, label="after: W' k'")
    ax[0].plot(*[[float((k @ w.T).min()), float((k @ w.T).max())]] * 2, "k--", lw=0.8)
    ax[0].set(xlabel="value v = W k (clean input)", ylabel="output on triggered input", title="keys -> values")
    ax[0].legend()
    ax[1].plot(delta.numpy(), lw=0.8)
    ax[1].set(xlabel="input dimension of the layer", ylabel="||column of W' - W||", title="where W changed")
    ax[2].plot((kt - k).abs().mean(0).numpy(), lw=0.8, color=style.ROLE["backdoored"])
    ax[2].set(xlabel="input dimension of the layer", ylabel="mean |k' - k|", title="what the trigger adds")
    fig.tight_layout()
    return fig


def edit_widget(sc: Scenario, ns: tuple[int, ...] = (1, 2, 5, 10, 20, 50)) -> Any:
    """An ipywidgets slider over N that re-runs the edit and prints acc / asr (live kernel only)."""
    import ipywidgets as w

    out = w.Output()
    slider = w.SelectionSlider(options=list(ns), value=10, description="unseen N")

    def show(change: Any = None) -> None:
        _, m = bdk_edit(sc, slider.value)
        with out:
            out.clear_output()
            print(f"N={slider.value}: acc {100 * m['acc']:.2f}%  asr {100 * m['asr']:.2f}%  "
                  f"({m['seconds']:.3f} s)")

    slider.observe(show, names="value")
    show()
    return live(w.VBox([slider, out]), "A slider over the number of unseen samples N re-runs the edit and prints "
                                       "acc and asr.")


def plot_neural_cleanse(nc: Any, true_trigger: Any, true_target: int) -> plt.Figure:
    """Masks per class, the MAD anomaly index, and the recovered vs the true trigger of the target."""
    k = len(nc.classes)
    fig = plt.figure(figsize=style.figsize(4.4), layout="constrained")  # mixed grids: not tight_layout
    for i, c in enumerate(nc.classes):
        ax = fig.add_subplot(3, k, i + 1)
        ax.imshow(nc.masks[i, 0], cmap="magma", vmin=0, vmax=1)
        ax.set_title(f"{c}: {float(nc.mask_norms[i]):.0f}", fontsize=style.MIN_FONT_PT)
        ax.axis("off")
    ax = fig.add_subplot(3, 2, 3)
    colors = [style.ROLE["backdoored"] if c == nc.target else style.ROLE["clean"] for c in nc.classes]
    ax.bar([str(c) for c in nc.classes], nc.anomaly_index.numpy(), color=colors)
    ax.axhline(2, ls="--", color=style.BLACK, lw=0.8)
    ax.set(xlabel="class", ylabel="anomaly index")
    t = nc.classes.index(nc.target)
    panels = [(nc.masks[t] * nc.patterns[t], f"recovered m*p (class {nc.target})"),
              (true_trigger.mask * true_trigger.pattern, f"true trigger (target {true_target})")]
    for j, (img, title) in enumerate(panels):  # m*p in the images' own channels (grey or colour)
        imshow(fig.add_subplot(3, 4, 7 + j), img.expand(nc.patterns.shape[1], -1, -1), title)
    return fig


def plot_per_class(models: dict[str, nn.Module], sc: Scenario) -> plt.Figure:
    """Clean accuracy per class for several models (grouped bars), the target class marked."""
    fig, ax = plt.subplots(figsize=style.figsize(3.0))
    width = 0.8 / len(models)
    for i, (name, m) in enumerate(models.items()):
        acc = 100 * per_class_accuracy(m, sc.split.test)
        ax.bar(torch.arange(len(acc)) + i * width, acc.numpy(), width, label=name)
    ax.axvspan(sc.target - 0.1, sc.target + 0.9, color=style.ROLE["clean"], alpha=0.15)
    ax.set(xlabel="class (shaded: target)", ylabel="clean accuracy (%)", ylim=(0, 105))
    ax.legend(loc="lower right")
    fig.tight_layout()
    return fig


def target_margins(models: dict[str, nn.Module], sc: Scenario) -> plt.Figure:
    """Histogram of the target-class margin (target logit minus the best other logit) on target-class tests."""
    x = sc.split.test.of_class(sc.target).x
    fig, ax = plt.subplots(figsize=style.figsize(3.0, 6.0))
    for name, m in models.items():
        z = logits(m, x)
        others = torch.cat([z[:, :sc.target], z[:, sc.target + 1:]], 1).max(1).values
        ax.hist((z[:, sc.target] - others).numpy(), bins=30, alpha=0.5, label=name)
    ax.axvline(0, color=style.BLACK, lw=0.8)
    ax.set(xlabel="target logit margin on clean target-class samples (<0: misclassified)", ylabel="samples")
    ax.legend()
    fig.tight_layout()
    return fig
