"""Fine-tuning baseline: train the attacked model a little more on the defender's clean samples.

The update is plain cross-entropy on the ``unseen`` defender samples, through the one training loop
(:func:`unlearnlib.ml.train.train`). It uses no trigger and no target: whatever of the backdoor survives is what
clean fine-tuning alone cannot forget (catastrophic forgetting of the trigger is not guaranteed, since the
clean samples never activate it). *[ours]* Defaults sized for the quick profile (mnist5k, small CNN).
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from ..core.checks import check_number, check_positive_int, check_positive_number
from ..core.registry import DEFENSES
from ..data import Data
from ..ml.train import AUGMENTATIONS, train
from .base import Defense, DefenseResult


def check_finetune_args(epochs: int, lr: float, batch_size: int, optimizer: str, weight_decay: float,
                        augment: str) -> None:
    """Validate the fine-tuning hyperparameters shared by the fine-tuning baselines (errors name the parameter)."""
    check_positive_int(epochs, "epochs")
    check_positive_int(batch_size, "batch_size")
    check_positive_number(lr, "lr")
    if optimizer not in ("adam", "sgd"):
        raise ValueError(f"optimizer must be 'adam' or 'sgd', got {optimizer!r}")
    check_number(weight_decay, "weight_decay")
    if augment not in AUGMENTATIONS:
        raise ValueError(f"augment must be one of {list(AUGMENTATIONS)}, got {augment!r}")


class FineTuningDefense(Defense):
    """Shared base of the fine-tuning baselines: holds the hyperparameters and calls :func:`train`."""

    def __init__(self, epochs: int = 10, lr: float = 1e-3, batch_size: int = 32, optimizer: str = "adam",
                 weight_decay: float = 0.0, augment: str = "none", device: str | torch.device = "auto",
                 seed: int = 0, progress: bool | None = None) -> None:
        super().__init__(device=device, seed=seed, progress=progress)
        check_finetune_args(epochs, lr, batch_size, optimizer, weight_decay, augment)
        self.epochs, self.lr, self.batch_size = epochs, float(lr), batch_size
        self.optimizer, self.weight_decay, self.augment = optimizer, float(weight_decay), augment

    def finetune(self, model: nn.Module, data: Data, desc: str) -> nn.Module:
        """Fine-tune ``model`` in place on ``data`` with this defense's hyperparameters (eval mode after)."""
        return train(model, data, epochs=self.epochs, lr=self.lr, batch_size=self.batch_size,
                     optimizer=self.optimizer, weight_decay=self.weight_decay, augment=self.augment,
                     device=self.device, seed=self.seed, progress=self.progress, desc=desc)

    def hyperparameters(self) -> dict[str, Any]:
        return {"epochs": self.epochs, "lr": self.lr, "batch_size": self.batch_size, "optimizer": self.optimizer,
                "weight_decay": self.weight_decay, "augment": self.augment}


@DEFENSES.register("finetune")
class FineTune(FineTuningDefense):
    """Fine-tune every layer on the clean defender samples (cross-entropy, true labels)."""

    name = "finetune"
    colour = "grey"
    smoke_params = {"epochs": 2}
    default_unseen = 175  # 5% of the 3,500 attacker-train samples: the BAERASE budget

    def run(self, model: nn.Module, defender: Data, *, trigger: Any, target: int | None,
            num_classes: int) -> DefenseResult:
        model = self.finetune(model, defender, desc="finetune")
        return DefenseResult(model, {**self.hyperparameters(), "samples": len(defender)})
