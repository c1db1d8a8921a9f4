"""K independent copies of one network trained as one batched model (``torch.func``).

``stack_module_state`` stacks the parameters and buffers of K modules of the same architecture along a new
leading dimension, and ``vmap(functional_call(...))`` runs all K on their own inputs in one call. Because Adam
(and every other element-wise optimiser) updates each entry from its own gradient and moments, one optimiser
over the stacked tensors takes exactly the K separate steps, and the gradient of a *sum* of per-copy losses with
respect to copy k's slice is the gradient of copy k's loss alone. BatchNorm in training mode normalises each copy
over its own batch and updates its own slice of the running statistics.
"""

from __future__ import annotations

import copy
from collections.abc import Sequence
from typing import Any

import torch
from torch import nn
from torch.func import functional_call, stack_module_state, vmap


class Stack:
    """``modules`` (same architecture, same device) as stacked tensors; ``stack(*inputs)`` calls all of them.

    Each input carries the copy index as its leading dimension. :meth:`write_back` copies the trained slices back
    into the original modules (parameters and buffers), which then work on their own as before.
    """

    def __init__(self, modules: Sequence[nn.Module]) -> None:
        if not modules:
            raise ValueError("modules must hold at least one module to stack")
        self.modules = list(modules)
        self.params, self.buffers = stack_module_state(self.modules)
        self.base = copy.deepcopy(self.modules[0]).to("meta")

    def __len__(self) -> int:
        return len(self.modules)

    def parameters(self) -> list[torch.Tensor]:
        return list(self.params.values())

    def __call__(self, *inputs: torch.Tensor, train: bool = True, **kwargs: Any) -> Any:
        self.base.train(train)

        def one(params: dict[str, torch.Tensor], buffers: dict[str, torch.Tensor], *xs: torch.Tensor) -> Any:
            return functional_call(self.base, (params, buffers), xs, kwargs)

        return vmap(one)(self.params, self.buffers, *inputs)

    @torch.no_grad()
    def write_back(self) -> None:
        for j, m in enumerate(self.modules):
            for name, t in m.named_parameters():
                t.copy_(self.params[name][j])
            for name, t in m.named_buffers():
                t.copy_(self.buffers[name][j])
