"""LeNet-5 (LeCun et al. 1998), a robustness-grid architecture that names no layer (``lenet5``)."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from ..core.registry import MODELS
from .base import max_pool2


@MODELS.register("lenet5")
class LeNet5(nn.Module):
    """LeNet-5 (LeCun et al. 1998) with ReLU and max pooling: conv(6, 5x5)-pool-conv(16, 5x5)-pool-fc(120)-fc(84)-
    fc(classes); the first conv is padded to keep 28x28 digits at LeNet's 32x32 geometry. ~60k parameters."""

    def __init__(self, in_channels: int = 1, num_classes: int = 10, image_size: int = 28) -> None:
        super().__init__()
        pad = 2 if image_size == 28 else 0
        side = ((image_size + 2 * pad - 4) // 2 - 4) // 2
        if side < 1:
            raise ValueError(f"image_size must be at least 16 for lenet5, got {image_size}")
        self.c1 = nn.Conv2d(in_channels, 6, 5, padding=pad)
        self.c3 = nn.Conv2d(6, 16, 5)
        self.f5 = nn.Linear(16 * side * side, 120)
        self.f6 = nn.Linear(120, 84)
        self.out = nn.Linear(84, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = max_pool2(F.relu(self.c1(x)))
        x = max_pool2(F.relu(self.c3(x)))
        return self.out(F.relu(self.f6(F.relu(self.f5(x.flatten(1))))))
