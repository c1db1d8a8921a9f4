"""A multilayer perceptron, a robustness-grid architecture with no convolution at all (``mlp``)."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from ..core.registry import MODELS


@MODELS.register("mlp")
class MLP(nn.Module):
    """A plain multilayer perceptron on the flattened image: (C*H*W)-256-128-classes with ReLU (784-256-128-10 on
    digits). No convolution at all: every defense must work on Linear layers alone."""

    def __init__(self, in_channels: int = 1, num_classes: int = 10, image_size: int = 28,
                 hidden: tuple[int, ...] = (256, 128)) -> None:
        super().__init__()
        dims = [in_channels * image_size * image_size, *hidden]
        self.hidden = nn.ModuleList(nn.Linear(a, b) for a, b in zip(dims[:-1], dims[1:]))
        self.head = nn.Linear(dims[-1], num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x.flatten(1)
        for layer in self.hidden:
            x = F.relu(layer(x))
        return self.head(x)
