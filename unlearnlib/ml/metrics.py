"""The metrics of METHODS.md, one definition each, used by every chapter, the CLI and the benchmark.

With target class t, trigger T and the clean test set {(x, y)}:

- acc        = P[f(x) = y]                                  clean accuracy
- asr        = P[f(T(x)) = t | y != t]                      attack success rate
- target_acc = P[f(x) = t | y = t]                          clean accuracy on the target class
- ra         = P[f(T(x)) = y | y != t]                      robust accuracy
- asr_floor  = asr of a clean model (same data and seed)    the natural error rate into t
- der        = (max(0, asr_b - asr_a) - max(0, acc_b - acc_a) + 1) / 2      (BackdoorBench)
All are fractions in [0, 1]. :func:`target_flips` counts the target class's test images a defense turned wrong and
right, for the success rule's significance test.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from ..core.checks import check_class, check_classifier, check_positive_int
from ..core.device import INFERENCE_BATCH, autocast
from ..data import Data
from .triggers import (
    TriggerArg,
    apply_trigger,
    paste,  # Π: the one patch pasting (recovered triggers use it too)
)


def _model_device(model: nn.Module) -> torch.device:
    p = next(iter(model.parameters()), None)
    return p.device if p is not None else torch.device("cpu")


@torch.no_grad()
def logits(model: nn.Module, x: torch.Tensor, batch_size: int = INFERENCE_BATCH) -> torch.Tensor:
    """Logits of ``model`` on ``x`` (float32, on the CPU), in eval mode, restoring the model's mode after."""
    check_classifier(model)
    dev, was_training = _model_device(model), model.training
    model.eval()
    try:
        outs = []
        for s in range(0, len(x), batch_size):
            with autocast(dev):
                outs.append(model(x[s:s + batch_size].to(dev)).float().cpu())
        return torch.cat(outs) if outs else torch.empty(0)
    finally:
        model.train(was_training)


def predict(model: nn.Module, x: torch.Tensor, batch_size: int = INFERENCE_BATCH) -> torch.Tensor:
    """Predicted classes (long, CPU)."""
    return logits(model, x, batch_size).argmax(1)


def evaluate(model: nn.Module, test: Data, trigger: TriggerArg, target: int) -> dict[str, float]:
    """``acc``, ``asr``, ``target_acc`` and ``ra`` of ``model`` on ``test`` for this trigger and target."""
    check_class(target, int(test.y.max()) + 1, "target")
    pred = predict(model, test.x)
    y = test.y.cpu()
    non_target = y != target
    triggered = predict(model, apply_trigger(trigger, test.x[non_target]))
    return {
        "acc": float((pred == y).float().mean()),
        "asr": float((triggered == target).float().mean()),
        "target_acc": float((pred[~non_target] == target).float().mean()),
        "ra": float((triggered == y[non_target]).float().mean()),
    }


def target_flips(before: nn.Module, after: nn.Module, test: Data, target: int) -> dict[str, int]:
    """On ``test``'s images of class ``target``: ``n``, and how many ``after`` gets wrong that ``before`` got right
    (``lost``) and right that ``before`` got wrong (``gained``) -- the discordant pairs of the exact McNemar test
    of :func:`unlearnlib.evaluation.rule.mcnemar_p`."""
    x = test.x[test.y == target]
    right_before, right_after = predict(before, x) == target, predict(after, x) == target
    return {"n": len(x), "lost": int((right_before & ~right_after).sum()),
            "gained": int((~right_before & right_after).sum())}


def per_class_accuracy(model: nn.Module, test: Data) -> torch.Tensor:
    """Clean accuracy of each class (a tensor of length num_classes)."""
    pred, y = predict(model, test.x), test.y.cpu()
    return torch.stack([(pred[y == c] == c).float().mean() for c in range(int(y.max()) + 1)])


def attack_rate(model: nn.Module, x: torch.Tensor, target: int) -> float:
    """Fraction of ``x`` classified as ``target`` (used with already-triggered inputs)."""
    return float((predict(model, x) == target).float().mean())


@torch.no_grad()
def asr_by_position(model: nn.Module, x: torch.Tensor, patch: torch.Tensor, target: int,
                    stride: int = 2) -> tuple[torch.Tensor, torch.Tensor]:
    """Where a patch backdoor fires: ``(asr, ink)``, two maps over the top-left corner of ``patch`` (C, k, k),
    probed every ``stride`` pixels. ``asr[i, j]``: the fraction of ``x`` (images of classes other than
    ``target``) that ``model`` sends to ``target`` with the patch pasted there; ``ink[i, j]``: the mean
    intensity of ``x`` under that window (where the digits are). A backdoor planted at every position has a flat
    asr map."""
    if x.dim() != 4 or len(x) == 0 or patch.dim() != 3 or patch.shape[0] != x.shape[1] or patch.shape[1] != \
            patch.shape[2] or patch.shape[1] > min(x.shape[2:]):
        raise ValueError(f"x must be a non-empty (N, C, H, W) batch and patch a (C, k, k) square that fits in it, "
                         f"got x {tuple(x.shape)} and patch {tuple(patch.shape)}")
    check_positive_int(stride, "stride")
    check_class(target, int(logits(model, x[:1]).shape[1]), "target")
    k, (h, w) = patch.shape[1], x.shape[2:]
    lefts = torch.arange(0, w - k + 1, stride)
    cols = lefts.repeat_interleave(len(x))  # one row of positions per batch: every image at every column
    batch, patches = x.repeat(len(lefts), 1, 1, 1), patch.to(x.device, x.dtype).expand(len(cols), -1, -1, -1)
    rows = []
    for t in range(0, h - k + 1, stride):
        pred = predict(model, paste(batch, patches, torch.full_like(cols, t), cols))
        rows.append((pred == target).float().view(len(lefts), len(x)).mean(1))
    window = F.avg_pool2d(x.float().mean((0, 1))[None, None].cpu(), k, stride=1)[0, 0]
    return torch.stack(rows), window[::stride, ::stride]


def der(before: dict[str, float], after: dict[str, float]) -> float:
    """Defense effectiveness rating (BackdoorBench): ``(max(0, dASR) - max(0, dACC) + 1) / 2``."""
    d_asr = before["asr"] - after["asr"]
    d_acc = before["acc"] - after["acc"]
    return (max(0.0, d_asr) - max(0.0, d_acc) + 1) / 2
