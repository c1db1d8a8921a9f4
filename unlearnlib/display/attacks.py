"""Plots for chapter 1's attacks: what a trigger changes in the image, WaNet's warp field (and a recovered warp
beside it, chapter 2), where a random-position patch fires and what more poison buys it."""

from __future__ import annotations

from collections.abc import Mapping

import matplotlib.pyplot as plt
import torch
from matplotlib.figure import Figure

from ..ml.triggers import TriggerArg, apply_trigger
from . import style
from .images import imshow


def difference_gallery(x: torch.Tensor, triggers: Mapping[str, TriggerArg]) -> Figure:
    """For each trigger (a row pair per image): the clean image, ``T(x)`` and the signed difference
    ``T(x) - x`` (red brighter, blue darker; its colour scale is the row's largest change, printed above it)."""
    n = len(x)
    fig, axes = plt.subplots(len(triggers), 3 * n, figsize=(1.25 * 3 * n, 1.5 * len(triggers)), squeeze=False)
    for i, (name, trig) in enumerate(triggers.items()):
        xt = apply_trigger(trig, x)
        diff = (xt - x).detach().cpu().float()
        scale = max(float(diff.abs().max()), 1e-6)
        for j in range(n):
            a0, a1, a2 = axes[i, 3 * j:3 * j + 3]
            imshow(a0, x[j], "clean" if i == 0 else "")
            imshow(a1, xt[j], "triggered" if i == 0 else "")
            a2.imshow(diff[j].mean(0), cmap="RdBu_r", vmin=-scale, vmax=scale)
            a2.set_title(f"T(x) - x (±{scale:.2f})", fontsize=7)
            a2.axis("off")
        axes[i, 0].text(-0.15, 0.5, name, transform=axes[i, 0].transAxes, ha="right", va="center", fontsize=10)
    fig.tight_layout()
    return fig


def _flow(trigger: object, param: str) -> torch.Tensor:
    flow = getattr(trigger, "flow", None)
    if not isinstance(flow, torch.Tensor) or flow.dim() != 3 or flow.shape[0] != 2:
        raise ValueError(f"{param} must expose a flow field of shape (2, H, W) (WaNet, a recovered warp), got "
                         f"{type(trigger).__name__}")
    return flow.detach().cpu().float()


def _flow_panel(fig: Figure, ax: plt.Axes, flow: torch.Tensor, step: int, title: str,
                vmax: float | None = None) -> None:
    """The displacement magnitude (pixels) with arrows (x4) every ``step`` pixels."""
    mag = flow.norm(dim=0)
    im = ax.imshow(mag, cmap="viridis", vmin=0, vmax=vmax)
    h, w = mag.shape
    ys, xs = torch.meshgrid(torch.arange(0, h, step), torch.arange(0, w, step), indexing="ij")
    ax.quiver(xs, ys, flow[0, ::step, ::step], flow[1, ::step, ::step], color="w", angles="xy",
              scale_units="xy", scale=0.25, width=0.006)
    ax.set_title(f"{title}arrows x4 (max {float(mag.max()):.2f} px)", fontsize=9)
    ax.axis("off")
    fig.colorbar(im, ax=ax, fraction=0.046, pad=0.04)


def plot_flow_field(trigger: object, image: torch.Tensor | None = None, step: int = 2) -> Figure:
    """WaNet's warp: the displacement magnitude (pixels) with arrows every ``step`` pixels, beside the image
    before and after the warp when ``image`` (C, H, W) is given. ``trigger`` must expose ``flow`` (2, H, W)."""
    flow = _flow(trigger, "trigger")
    ncols = 1 if image is None else 3
    fig, axes = plt.subplots(1, ncols, figsize=(3.2 * ncols, 3.1), squeeze=False)
    _flow_panel(fig, axes[0, 0], flow, step, "sampling shift, ")
    if image is not None:
        warped = apply_trigger(trigger, image[None])[0]  # type: ignore[arg-type]
        imshow(axes[0, 1], image, "clean")
        imshow(axes[0, 2], warped, "warped")
    fig.tight_layout()
    return fig


def compare_flow_fields(triggers: Mapping[str, object], step: int = 2) -> Figure:
    """Warps side by side on one colour scale: each trigger's flow field (``.flow``, (2, H, W) pixels), e.g. the
    attacker's WaNet beside a recovered warp (:attr:`unlearnlib.recovery.GeneratedTrigger.flow`)."""
    if not triggers:
        raise ValueError("triggers must map at least one name to a trigger with a flow field")
    flows = {name: _flow(t, f"triggers[{name!r}]") for name, t in triggers.items()}
    vmax = max(float(f.norm(dim=0).max()) for f in flows.values())
    fig, axes = plt.subplots(1, len(flows), figsize=(3.4 * len(flows), 3.1), squeeze=False)
    for ax, (name, flow) in zip(axes[0], flows.items()):
        _flow_panel(fig, ax, flow, step, f"{name}\n", vmax)
    fig.tight_layout()
    return fig


def plot_position_asr(asr: torch.Tensor, ink: torch.Tensor, stride: int) -> Figure:
    """Beside each other: where the digits are (``ink``, the mean test image under the patch window) and where a
    random-position backdoor fires (``asr`` in %), both over the patch's top-left corner
    (:func:`unlearnlib.ml.metrics.asr_by_position`, probed every ``stride`` pixels)."""
    fig, (a0, a1) = plt.subplots(1, 2, figsize=(6.8, 3.0))
    extent = (-0.5 * stride, (asr.shape[1] - 0.5) * stride, (asr.shape[0] - 0.5) * stride, -0.5 * stride)
    im0 = a0.imshow(ink, cmap="gray", extent=extent)
    a0.set_title("mean digit under the patch")
    im1 = a1.imshow(100 * asr, cmap="magma", vmin=0, vmax=100, extent=extent)
    a1.set_title("asr (%) with the patch there")
    for ax, im in ((a0, im0), (a1, im1)):
        ax.set(xlabel="patch column", ylabel="patch row")
        fig.colorbar(im, ax=ax, fraction=0.046, pad=0.04)
    fig.tight_layout()
    return fig


def plot_poison_sweep(sweep: Mapping[str, Mapping[float, Mapping[str, float]]], clean_acc: float,
                      planted: float | None = None) -> Figure:
    """asr and accuracy (%) of backdoored models against the poison ratio, one line per trigger: ``sweep[name]
    [ratio]`` is a model's metrics (:attr:`unlearnlib.experiment.Scenario.before`); ``clean_acc`` (a fraction) is
    the clean model's accuracy, drawn as the reference line, and ``planted`` (a fraction, e.g.
    :data:`unlearnlib.attacks.ATTACKER_ASR`) the asr a planted backdoor reaches. A trigger the network can tell
    from the digits gains asr at little cost in accuracy; one it cannot gains asr only by sending clean digits to
    the target too."""
    fig, (a0, a1) = plt.subplots(1, 2, figsize=style.figsize(2.8))
    for (name, by_ratio), colour, marker in zip(sweep.items(), style.CYCLE, style.MARKERS):
        ratios = sorted(by_ratio)
        for ax, key in ((a0, "asr"), (a1, "acc")):
            ax.plot([100 * r for r in ratios], [100 * by_ratio[r][key] for r in ratios], marker=marker,
                    color=colour, label=name)
    a1.axhline(100 * clean_acc, ls="--", color=style.ROLE["clean"], label="clean model")
    if planted is not None:
        a0.axhline(100 * planted, ls=":", color=style.ROLE["reference"], label="planted")
        a0.legend(fontsize=style.MIN_FONT_PT, loc="lower right")
    a0.set(xlabel="poisoned images (%)", ylabel="asr (%)", ylim=(0, 102), title="the backdoor")
    a1.set(xlabel="poisoned images (%)", ylabel="acc (%)", title="clean accuracy")
    a1.legend(fontsize=style.MIN_FONT_PT)
    fig.tight_layout()
    return fig
