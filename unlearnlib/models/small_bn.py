"""A small all-convolutional BatchNorm network with global average pooling, a robustness-grid architecture whose only
Linear is the output layer (``small-bn``)."""

from __future__ import annotations

import torch
from torch import nn

from ..core.registry import MODELS
from .base import max_pool2


@MODELS.register("small-bn")
class SmallBN(nn.Module):
    """A small all-convolutional network with BatchNorm and global average pooling: three conv-BN-ReLU blocks
    (16, 32, 64 channels; max pooling after the first two), then the mean over positions and one Linear, the
    output layer. ~25k parameters."""

    def __init__(self, in_channels: int = 1, num_classes: int = 10, image_size: int = 28, width: int = 16) -> None:
        super().__init__()
        chans = [in_channels, width, 2 * width, 4 * width]
        self.blocks = nn.ModuleList(
            nn.Sequential(nn.Conv2d(a, b, 3, padding=1, bias=False), nn.BatchNorm2d(b), nn.ReLU())
            for a, b in zip(chans[:-1], chans[1:]))
        self.classifier = nn.Linear(chans[-1], num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for i, block in enumerate(self.blocks):
            x = block(x)
            if i < len(self.blocks) - 1:
                x = max_pool2(x)
        return self.classifier(x.mean((2, 3)))
