"""IMC (Pang et al., CCS 2020, "A tale of evil twins"): input-model co-optimisation.

The trigger (a pattern inside a fixed mask, optimised in tanh space) and the poisoned model are updated in
alternation: before every training epoch the trigger takes ``trigger_steps`` Adam steps (lr ``trigger_lr``) on

    L(p) = mean_x CE(f(T_p(x)), t)       over the attacker's non-target training images       (trigger step)

against the current model, the training set is re-poisoned with it, and the model trains one epoch on it
(reference code: 20 inner trigger steps per round, Adam lr 0.1). The model starts from the clean model, so the
first trigger is an adversarial patch of the clean model. The final trigger is cached with the model.

Defaults *[ours]*: a 3x3 square at the bottom-right corner (BadNets' budget), batches of 128 images.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from ..core.checks import check_positive_int, check_positive_number
from ..core.registry import ATTACKS
from ..data import Data
from .patch import LearnedPatch


@ATTACKS.register("imc")
class IMC(LearnedPatch):
    """The IMC trigger: re-optimised against the model being poisoned before every epoch."""

    name = "imc"
    needs_clean_model = True

    def __init__(self, image_shape: tuple[int, int, int], size: int = 3, shape: str = "square",
                 position: str | tuple[int, int] = "corner", trigger_steps: int = 20, trigger_lr: float = 0.1,
                 batch_size: int = 128, seed: int = 0) -> None:
        super().__init__(image_shape, size, shape, position, seed)
        self.trigger_steps = check_positive_int(trigger_steps, "trigger_steps")
        self.trigger_lr = check_positive_number(trigger_lr, "trigger_lr")
        self.batch_size = check_positive_int(batch_size, "batch_size")
        self.losses: list[float] = []

    def co_optimise(self, model: nn.Module, data: Data, target: int, seed: int) -> bool:
        """One round of (trigger step) against ``model``."""
        others = data.index((data.y != target).nonzero().flatten())

        def target_loss(m: nn.Module, x: torch.Tensor) -> torch.Tensor:
            logits = m(x)
            return F.cross_entropy(logits.float(), torch.full((len(x),), target, device=x.device))

        self.losses += self.optimise(model, others, target_loss, self.trigger_steps, self.trigger_lr,
                                     self.batch_size, 60_000 + seed)
        return True
