"""The metrics of METHODS.md, one definition each, used by every chapter, the CLI and the benchmark.

With target class t, trigger T and the clean test set {(x, y)}:

- acc        = P[f(x) = y]                                  clean accuracy
- asr        = P[f(T(x)) = t | y != t]                      attack success rate
- target_acc = P[f(x) = t | y = t]                          clean accuracy on the target class
- ra         = P[f(T(x)) = y | y != t]                      robust accuracy
- asr_floor  = asr of a clean model (same data and seed)    the natural error rate into t
- der        = (max(0, asr_b - asr_a) - max(0, acc_b - acc_a) + 1) / 2      (BackdoorBench)
All are fractions in [0, 1].
"""

from __future__ import annotations

import torch
from torch import nn

from .attacks import TriggerArg, apply_trigger
from .checks import check_class, check_classifier
from .data import Data
from .device import INFERENCE_BATCH, autocast


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


def per_class_accuracy(model: nn.Module, test: Data) -> torch.Tensor:
    """Clean accuracy of each class (a tensor of length num_classes)."""
    pred, y = predict(model, test.x), test.y.cpu()
    return torch.stack([(pred[y == c] == c).float().mean() for c in range(int(y.max()) + 1)])


def attack_rate(model: nn.Module, x: torch.Tensor, target: int) -> float:
    """Fraction of ``x`` classified as ``target`` (used with already-triggered inputs)."""
    return float((predict(model, x) == target).float().mean())


def der(before: dict[str, float], after: dict[str, float]) -> float:
    """Defense effectiveness rating (BackdoorBench): ``(max(0, dASR) - max(0, dACC) + 1) / 2``."""
    d_asr = before["asr"] - after["asr"]
    d_acc = before["acc"] - after["acc"]
    return (max(0.0, d_asr) - max(0.0, d_acc) + 1) / 2
