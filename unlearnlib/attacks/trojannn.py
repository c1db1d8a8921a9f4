"""TrojanNN (Liu et al., NDSS 2018): a trigger whose pixels are optimised to fire a few chosen neurons.

1. Neurons: in the layer before the classifier, the ``neurons`` units with the largest total absolute incoming
   weight ``sum_j |W_ij|`` (the paper's "strongest connections to the previous layer"). For a model whose layer
   before the classifier is not a Linear (PreAct-ResNet18), the classifier's inputs ranked by their outgoing
   weights ``sum_c |W_ci|`` *[ours]*.
2. Trigger: inside a fixed mask (a square, or a simple logo), the pattern minimises on the clean model

       L(p) = mean_x  sum_{i in neurons} (a_i(T_p(x)) - v)^2                          (neuron loss)

   with ``a_i`` the unit's pre-activation and ``v`` the target value (TrojanZoo: 2 neurons, v = 10, Adam at
   lr 0.015 for 20 epochs; here ``steps`` Adam steps on random batches of the attacker's training set *[ours]*:
   300 steps of 128 images, about 8 epochs of mnist5k's attacker set, and the loss has flattened by then).
3. The model is fine-tuned from the clean model on data poisoned with that trigger (:meth:`Attack.plant`).

The defaults *[ours]*: a 5x5 square at the bottom-right corner (BAERASE evaluates TrojanNN at a fixed position).
"""

from __future__ import annotations

import torch
from torch import nn

from ..core.checks import check_positive_int, check_positive_number
from ..core.registry import ATTACKS
from ..data import Data
from ..ml.edit import default_edit_layer
from ..models import get_layer
from .patch import LearnedPatch


def neuron_layer(model: nn.Module) -> tuple[nn.Module, bool]:
    """The layer whose units TrojanNN drives, and whether its *output* (True) or its input (False) is used."""
    linears = [m for m in model.modules() if isinstance(m, nn.Linear)]
    if not linears:
        raise ValueError(f"model: TrojanNN needs a Linear classifier; {type(model).__name__} has none")
    layer = get_layer(model, default_edit_layer(model, "last"))
    if isinstance(layer, nn.Linear) and layer is not linears[-1]:
        return layer, True
    return linears[-1], False


def select_neurons(model: nn.Module, n: int) -> torch.Tensor:
    """The ``n`` units with the strongest connections (see step 1)."""
    layer, output = neuron_layer(model)
    w = layer.weight.detach().abs()
    score = w.sum(1) if output else w.sum(0)
    if n > len(score):
        raise ValueError(f"neurons must be at most the layer's {len(score)} units, got {n}")
    return score.argsort(descending=True)[:n].sort().values.cpu()


def activations(model: nn.Module, x: torch.Tensor) -> torch.Tensor:
    """The units of :func:`neuron_layer` on ``x`` (with gradient), captured by a hook."""
    layer, output = neuron_layer(model)
    got: list[torch.Tensor] = []
    hook = (layer.register_forward_hook(lambda _m, _i, out: got.append(out)) if output
            else layer.register_forward_pre_hook(lambda _m, inp: got.append(inp[0])))
    try:
        model(x)
    finally:
        hook.remove()
    return got[0].flatten(1)


@ATTACKS.register("trojannn")
class TrojanNN(LearnedPatch):
    """The TrojanNN trigger: fixed mask, pattern optimised on the clean model to drive ``neurons`` units to
    ``target_value``."""

    name = "trojannn"
    needs_clean_model = True

    def __init__(self, image_shape: tuple[int, int, int], size: int = 5, shape: str = "square",
                 position: str | tuple[int, int] = "corner", neurons: int = 2, target_value: float = 10.0,
                 steps: int = 300, lr: float = 0.015, batch_size: int = 128, seed: int = 0) -> None:
        super().__init__(image_shape, size, shape, position, seed)
        self.neurons = check_positive_int(neurons, "neurons")
        self.target_value = check_positive_number(target_value, "target_value")
        self.steps, self.batch_size = check_positive_int(steps, "steps"), check_positive_int(batch_size, "batch_size")
        self.lr = check_positive_number(lr, "lr")
        self.selected: torch.Tensor | None = None
        self.losses: list[float] = []

    def prepare(self, clean: nn.Module, data: Data, target: int, seed: int) -> None:
        """Steps 1-2 on the clean model; the attack's ``target`` plays no part in the trigger (TrojanNN)."""
        self.selected = idx = select_neurons(clean, self.neurons)

        def neuron_loss(model: nn.Module, x: torch.Tensor) -> torch.Tensor:
            a = activations(model, x)[:, idx.to(x.device)]
            return ((a - self.target_value) ** 2).sum(1).mean()

        self.losses = self.optimise(clean, data, neuron_loss, self.steps, self.lr, self.batch_size, 50_000 + seed)

    def state_dict(self) -> dict[str, torch.Tensor]:
        state = super().state_dict()
        if self.selected is not None:
            state["neurons"] = self.selected.clone()
        return state

    def load_state_dict(self, state: dict[str, torch.Tensor]) -> None:
        state = dict(state)
        sel = state.pop("neurons", None)
        super().load_state_dict(state)
        self.selected = None if sel is None else sel.long()
