"""Neural Cleanse unlearning baseline (Wang et al., S&P 2019, section VI-C).

1. Recover a trigger with Neural Cleanse (:func:`unlearnlib.recovery.neural_cleanse.neural_cleanse`): one mask
   and pattern per class; the flagged class is the target. A caller that knows the target skips the search
   (Neural Cleanse on that class only).
2. Fine-tune on the defender samples plus copies of a ``fraction`` of them stamped with the recovered trigger
   ``T_t(x) = (1 - m_t) x + m_t p_t`` and labelled with their TRUE class, so the model learns to ignore it:

       min_theta  sum_{(x, y) in D} CE(f(x), y)  +  sum_{(x, y) in S} CE(f(T_t(x)), y),   S = fraction of D

*[ours]* The stamped copies are added to (not substituted for) the clean samples; the fine-tuning is the one
training loop :func:`unlearnlib.ml.train.train`. By default the unlearning runs even when the anomaly index does
not flag a class (the smallest-norm class is used); ``require_detection=True`` returns the model unchanged then.
"""

from __future__ import annotations

import time
from typing import Any

import torch
from torch import nn

from ..core.checks import check_fraction, check_number, check_positive_int, check_positive_number
from ..core.registry import DEFENSES
from ..data import Data
from ..recovery.neural_cleanse import neural_cleanse
from .base import DefenseResult
from .finetune import FineTuningDefense


@DEFENSES.register("nc-unlearn")
class NCUnlearn(FineTuningDefense):
    """Recover the trigger with Neural Cleanse, then fine-tune with recovered-trigger images at their true labels."""

    name = "nc-unlearn"
    repairable = True
    colour = "purple"
    smoke_params = {"nc_steps": 20, "epochs": 2}
    recovers_trigger = True
    default_unseen = 175  # 5% of the 3,500 attacker-train samples: the BAERASE budget
    min_classes = 2

    def __init__(self, fraction: float = 0.5, nc_steps: int = 100, nc_lr: float = 0.1, nc_lam: float = 0.01,
                 nc_batch_size: int = 8, require_detection: bool = False, epochs: int = 10, lr: float = 1e-3,
                 batch_size: int = 32, optimizer: str = "adam", weight_decay: float = 0.0, augment: str = "none",
                 device: str | torch.device = "auto", seed: int = 0, progress: bool | None = None) -> None:
        super().__init__(epochs=epochs, lr=lr, batch_size=batch_size, optimizer=optimizer,
                         weight_decay=weight_decay, augment=augment, device=device, seed=seed, progress=progress)
        self.fraction = check_fraction(fraction, "fraction")
        self.nc_steps = check_positive_int(nc_steps, "nc_steps")
        self.nc_batch_size = check_positive_int(nc_batch_size, "nc_batch_size")
        self.nc_lr, self.nc_lam = check_positive_number(nc_lr, "nc_lr"), check_number(nc_lam, "nc_lam")
        if not isinstance(require_detection, bool):
            raise ValueError(f"require_detection must be True or False, got {require_detection!r}")
        self.require_detection = require_detection

    def run(self, model: nn.Module, defender: Data, *, trigger: Any, target: int | None,
            num_classes: int) -> DefenseResult:
        start = time.perf_counter()
        nc = neural_cleanse(model, defender, num_classes, steps=self.nc_steps, lr=self.nc_lr, lam=self.nc_lam,
                            classes=None if target is None else [target], device=self.device, seed=self.seed,
                            progress=self.progress, batch_size=self.nc_batch_size)
        nc_seconds = time.perf_counter() - start
        tgt = nc.target if target is None else target
        info: dict[str, Any] = {**self.hyperparameters(), **_nc_info(nc), "target_used": tgt,
                                "known_target": target is not None, "nc_seconds": nc_seconds,
                                "nc_steps": self.nc_steps, "nc_lr": self.nc_lr, "nc_lam": self.nc_lam,
                                "fraction": self.fraction}
        if self.require_detection and target is None and not nc.detected:
            return DefenseResult(model, {**info, "unlearned": False, "stamped": 0}, nc.trigger(tgt), tgt,
                                 detected=False)
        recovered = nc.trigger(tgt)
        n_stamp = max(1, round(self.fraction * len(defender)))
        chosen = defender.take(n_stamp, self.seed)
        with torch.no_grad():
            stamped = recovered.apply(chosen.x).clamp(0, 1)
        data = Data(torch.cat([defender.x, stamped]), torch.cat([defender.y, chosen.y]))
        model = self.finetune(model, data, desc="nc-unlearn")
        return DefenseResult(model, {**info, "unlearned": True, "stamped": n_stamp,
                                     "recovered_mask_l1": float(recovered.mask.sum())}, recovered, tgt,
                             detected=None if target is not None else bool(nc.detected))


def _nc_info(nc: Any) -> dict[str, Any]:
    """The JSON-serialisable part of a Neural Cleanse result."""
    if hasattr(nc, "to_info"):
        return dict(nc.to_info())
    return {"nc_target": int(nc.target), "nc_detected": bool(nc.detected),
            "nc_mask_norms": [round(float(v), 4) for v in nc.mask_norms],
            "nc_anomaly_index": [round(float(v), 4) for v in nc.anomaly_index]}
