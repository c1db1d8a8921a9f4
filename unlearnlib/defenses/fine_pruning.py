"""Fine-pruning baseline (Liu, Dolan-Gavitt and Garg, RAID 2018): prune dormant channels, then fine-tune.

Backdoor features tend to live in channels of the last convolutional layer that clean inputs leave dormant.
With ``a_j`` the mean (ReLU'd) activation of channel j on clean defender samples:

1. rank the channels by ``a_j``, lowest first;
2. prune (zero the weights and bias of) the k lowest channels, growing k while the clean accuracy on
   held-out defender samples stays within ``tolerance`` of the unpruned model's (or prune a fixed ``ratio``);
3. fine-tune the pruned model on all defender samples; pruned channels stay zero (a weight mask).

The layer is the model's ``last_conv`` attribute when present, else its last ``nn.Conv2d``; *[ours]* a model with no
conv layer (an MLP) prunes the neurons (output features) of its last hidden Linear instead -- the Linear analogue
of the last conv layer's channels, the last representation before the output layer.
*[ours]* Channel ranking on (1 - ``holdout``) of the defender samples, accuracy on the rest (the shared rule of
:meth:`~unlearnlib.data.Data.holdout_split`); ``max_ratio`` caps the search so the layer keeps some channels.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn
from torch.nn.utils import prune

from ..core.checks import check_fraction
from ..core.registry import DEFENSES
from ..data import Data
from ..ml.metrics import logits, predict
from ..models import get_layer, last_conv_name
from .base import DefenseResult
from .finetune import FineTuningDefense


def last_conv_layer(model: nn.Module) -> tuple[str, nn.Conv2d | nn.Linear]:
    """``(name, layer)``: the model's ``last_conv`` attribute when it has one, else its last ``nn.Conv2d``, else
    *[ours]* its last hidden ``nn.Linear`` (the second-to-last Linear: an MLP has no channels, its neurons are
    pruned instead)."""
    name = getattr(model, "last_conv", None)
    if isinstance(name, str):
        layer = get_layer(model, name, "last_conv")
        if not isinstance(layer, nn.Conv2d):
            raise ValueError(f"last_conv={name!r} of {type(model).__name__} is not an nn.Conv2d")
        return name, layer
    name = last_conv_name(model)
    if name is not None:
        return name, get_layer(model, name)
    linears = [(n, m) for n, m in model.named_modules() if isinstance(m, nn.Linear)]
    if len(linears) < 2:
        raise ValueError(f"model ({type(model).__name__}) has no nn.Conv2d layer and no hidden nn.Linear to prune")
    return linears[-2]


def _units(out: torch.Tensor) -> tuple[int, ...]:
    """The view that broadcasts a per-unit vector over a layer output (N, C, H, W) or (N, F)."""
    return (1, -1) + (1,) * (out.dim() - 2)


@torch.no_grad()
def channel_activations(model: nn.Module, layer: nn.Module, x: torch.Tensor) -> torch.Tensor:
    """Mean ReLU activation of each output channel (or Linear neuron) of ``layer`` over ``x`` (a CPU tensor of
    length C_out)."""
    acts: list[torch.Tensor] = []
    handle = layer.register_forward_hook(lambda _m, _i, out: acts.append(
        out.float().relu().transpose(0, 1).reshape(out.shape[1], -1).mean(1).cpu()))
    try:
        logits(model, x, batch_size=len(x))  # one batch: one hook call
    finally:
        handle.remove()
    return acts[0]


def _accuracy(model: nn.Module, data: Data) -> float:
    return float((predict(model, data.x) == data.y.cpu()).float().mean())


def choose_pruned(model: nn.Module, layer: nn.Module, order: torch.Tensor, val: Data, tolerance: float,
                  max_ratio: float) -> tuple[int, list[float]]:
    """The largest k (prefix of ``order``) whose pruning keeps ``val`` accuracy within ``tolerance``."""
    mask = torch.ones(len(order))
    handle = layer.register_forward_hook(lambda _m, _i, out: out * mask.to(out.device, out.dtype).view(_units(out)))
    try:
        base = _accuracy(model, val)
        curve, k_max = [base], int(max_ratio * len(order))
        for k in range(1, k_max + 1):
            mask[order[k - 1]] = 0.0
            curve.append(_accuracy(model, val))
            if base - curve[-1] > tolerance:
                return k - 1, curve
        return k_max, curve
    finally:
        handle.remove()


@DEFENSES.register("fine-pruning")
class FinePruning(FineTuningDefense):
    """Prune the last conv layer's least-active channels on clean data, then fine-tune on the defender samples."""

    name = "fine-pruning"
    colour = "vermillion"
    smoke_params = {"epochs": 2}
    default_unseen = 175  # 5% of the 3,500 attacker-train samples: the BAERASE budget

    def __init__(self, tolerance: float = 0.01, ratio: float | None = None, max_ratio: float = 0.9,
                 holdout: float = 0.3, epochs: int = 10, lr: float = 1e-3, batch_size: int = 32,
                 optimizer: str = "adam", weight_decay: float = 0.0, augment: str = "none",
                 device: str | torch.device = "auto", seed: int = 0, progress: bool | None = None) -> None:
        super().__init__(epochs=epochs, lr=lr, batch_size=batch_size, optimizer=optimizer,
                         weight_decay=weight_decay, augment=augment, device=device, seed=seed, progress=progress)
        self.tolerance = check_fraction(tolerance, "tolerance", low_open=False)
        self.ratio = None if ratio is None else check_fraction(ratio, "ratio", low_open=False, high_closed=False)
        self.max_ratio = check_fraction(max_ratio, "max_ratio", high_closed=False)
        self.holdout = check_fraction(holdout, "holdout", high_closed=False)

    def run(self, model: nn.Module, defender: Data, *, trigger: Any, target: int | None,
            num_classes: int) -> DefenseResult:
        name, layer = last_conv_layer(model)
        channels = layer.weight.shape[0]
        rank, val = defender.holdout_split(self.holdout, self.seed, "defender")
        activation = channel_activations(model, layer, rank.x)
        order = activation.argsort()  # least active first (stable enough: ties are dormant channels)
        if self.ratio is None:
            k, curve = choose_pruned(model, layer, order, val, self.tolerance, self.max_ratio)
        else:
            k, curve = int(self.ratio * channels), []
        pruned = order[:k]
        keep = torch.ones(channels, device=layer.weight.device)
        keep[pruned.to(keep.device)] = 0.0
        per_unit = keep.view(-1, *[1] * (layer.weight.dim() - 1))  # a channel's kernel, or a neuron's weight row
        prune.custom_from_mask(layer, "weight", per_unit.expand_as(layer.weight).clone())
        if layer.bias is not None:
            prune.custom_from_mask(layer, "bias", keep)
        with torch.no_grad():
            acc_pruned = _accuracy(model, val)
        model = self.finetune(model, defender, desc="fine-pruning")
        prune.remove(layer, "weight")  # make the zeros permanent: plain parameters again
        if layer.bias is not None:
            prune.remove(layer, "bias")
        info = {**self.hyperparameters(), "layer": name, "channels": channels, "pruned": k,
                "pruned_ratio": k / channels, "pruned_channels": sorted(int(c) for c in pruned),
                "val_samples": len(val), "val_acc_curve": [round(a, 4) for a in curve],
                "val_acc_pruned": acc_pruned, "tolerance": self.tolerance}
        return DefenseResult(model, info)
