"""The book's small CNN for 1x28x28 digits (``cnn``): last conv ``conv2``, edited layer ``fc1``."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from ..core.registry import MODELS
from .base import max_pool2


@MODELS.register("cnn")
class SmallCNN(nn.Module):
    """conv(16)-pool-conv(32)-pool-fc(128)-fc(classes): ~0.2M parameters, trains on a CPU in seconds."""

    last_conv = "conv2"
    edit_layer = "fc1"

    def __init__(self, in_channels: int = 1, num_classes: int = 10, image_size: int = 28, width: int = 16) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(in_channels, width, 3, padding=1)
        self.conv2 = nn.Conv2d(width, 2 * width, 3, padding=1)
        self.fc1 = nn.Linear(2 * width * (image_size // 4) ** 2, 128)
        self.fc2 = nn.Linear(128, num_classes)

    def features(self, x: torch.Tensor) -> torch.Tensor:
        x = max_pool2(F.relu(self.conv1(x)))
        return max_pool2(F.relu(self.conv2(x)))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc2(F.relu(self.fc1(self.features(x).flatten(1))))
