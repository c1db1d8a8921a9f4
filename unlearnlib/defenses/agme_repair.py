"""The repair step of AGME without backdoor knowledge: give the target class back, using the unseen samples only.

Why it is needed: a recovered trigger (the generator's samples, or Neural Cleanse's mask and pattern) *looks like the
target class* to the model, so the (edit) objective maps target-class features to "not the target" and clean
target-class samples can lose their class.

Mechanism *[ours]*: a closed-form re-edit. The edit is solved again from the ORIGINAL weights W with the unseen
samples of the recovered target class t added as preservation keys, weighted by ``keep_weight`` (a), at their
original values W k_t:

    min_W'  sum_i ||W' k'_i - v_i||^2 + lam sum_j ||W' k_j - W k_j||^2
                                      + lam * keep_weight * sum_{x_t in unseen, y = t} ||W' k_t - W k_t||^2
                                      + mu ||W' - W||_F^2                                              (repair)

The triggered keys still go to their clean values, so the backdoor is not brought back (the chapter measures
the asr after repair); no gradient step, no labels beyond the defender's own.
"""

from __future__ import annotations

import copy
import time
from typing import Any

from torch import nn

from ..core.checks import check_number
from ..core.registry import DEFENSES
from ..data import Data
from ..ml.edit import edit_layers, shift_augment
from ..ml.triggers import TriggerArg
from .agme import Agme
from .base import DefenseResult


def repair_edit(original: nn.Module, unseen: Data, trigger: TriggerArg, target: int, *,
                layers: str | list[str] | None = None, lam: float = 1.0, mu: float = 1.0, keep_weight: float = 10.0,
                augment: bool = False) -> tuple[nn.Module, dict[str, Any]]:
    """A repaired copy of ``original``: the (repair) problem solved in closed form. ``original`` is not modified."""
    check_number(keep_weight, "keep_weight")
    target_x = unseen.of_class(target).x
    if len(target_x) == 0:
        raise ValueError(f"unseen must contain samples of the target class {target} for the repair step")
    model = copy.deepcopy(original).eval()
    aug = shift_augment if augment else (lambda x: x)
    start = time.perf_counter()
    out = edit_layers(model, aug(unseen.x), trigger, layers=layers, lam=lam, mu=mu, keep_x=aug(target_x),
                      keep_weight=keep_weight, base=original)
    return model, {"repair_seconds": time.perf_counter() - start, "repair_keys": int(len(target_x)),
                   "keep_weight": float(keep_weight), "layers": out["layers"]}


@DEFENSES.register("agme-repair")
class AgmeRepair(Agme):
    """AGME without backdoor knowledge, followed by the closed-form repair of the recovered target class."""

    name = "agme-repair"
    default_unseen = 50
    repairable = False  # it repairs already
    colour = "green"

    def __init__(self, keep_weight: float = 10.0, **kw: Any) -> None:
        super().__init__(**kw)
        self.keep_weight = check_number(keep_weight, "keep_weight")

    def hyperparameters(self) -> dict[str, Any]:
        return {**super().hyperparameters(), "keep_weight": self.keep_weight}

    def run(self, model: nn.Module, defender: Data, *, trigger: Any, target: int | None,
            num_classes: int) -> DefenseResult:
        """Recover the trigger, then solve the edit once, from the original weights, with the repair keys."""
        start = time.perf_counter()
        recovered, tgt, rinfo = self.recover_trigger(model, defender, target, num_classes)
        rinfo.setdefault("recovery_seconds", time.perf_counter() - start)
        repaired, info = repair_edit(model, defender, recovered, tgt, layers=self.layers_of(model), lam=self.lam,
                                     mu=self.mu, keep_weight=self.keep_weight, augment=self.augment)
        return DefenseResult(repaired, {**self.hyperparameters(), **rinfo, **info, "known_target": target is not None},
                             recovered, tgt, detected=None if target is not None else rinfo["detected"])
