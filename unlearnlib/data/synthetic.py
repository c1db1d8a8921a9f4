"""``synth32``: a small procedural 3x32x32 colour dataset, the data of the CPU ``smoke`` profile *[ours]*.

The ``full`` profile's path (3-channel 32x32 images, PreAct-ResNet18 with BatchNorm, colour triggers and figures)
has to run in CI, which has no internet and no CIFAR-10. ``synth32`` stands in for it: 10 classes, each a
hue and a stripe orientation, drawn with a random phase, stripe frequency, brightness and pixel noise:

    x_c(u, v) = clip( b · (0.5 + 0.4 · sin(f · (u cos θ_c + v sin θ_c) + φ)) · rgb_c + σ · ε ),   ε ~ N(0, 1)

with ``θ_c`` one of 5 orientations and ``rgb_c`` one of 2 colours per orientation. It is generated from a fixed
seed (the same images on every machine), and split like the other datasets: train 1,000 / test 300 / defender 300.
It is a smoke test of the code path, not a benchmark: its numbers say nothing about CIFAR-10.
"""

from __future__ import annotations

import functools
import math

import numpy as np
import torch

from ..core.registry import DATASETS
from .splits import Data, Split, from_parts

N_TRAIN, N_TEST, N_DEFENDER, CLASSES = 1000, 300, 300, 10
COLOURS = ((1.0, 0.25, 0.2), (0.2, 0.5, 1.0))  # reddish, bluish


@functools.lru_cache(maxsize=1)
def _images() -> tuple[torch.Tensor, torch.Tensor]:
    """All 1,600 images (float32 NCHW in [0, 1]) and labels, generated once per process from a fixed seed."""
    n = N_TRAIN + N_TEST + N_DEFENDER
    rng = np.random.default_rng(20240707)
    y = np.arange(n) % CLASSES
    rng.shuffle(y)
    theta = (y // 2) * math.pi / 5
    rgb = np.array(COLOURS)[y % 2]  # (n, 3)
    freq = rng.uniform(0.5, 0.9, n)
    phase = rng.uniform(0, 2 * math.pi, n)
    bright = rng.uniform(0.6, 1.0, n)
    u, v = np.meshgrid(np.arange(32), np.arange(32), indexing="ij")
    arg = freq[:, None, None] * (u * np.cos(theta)[:, None, None] + v * np.sin(theta)[:, None, None])
    wave = 0.5 + 0.4 * np.sin(arg + phase[:, None, None])  # (n, 32, 32)
    x = bright[:, None, None, None] * wave[:, None] * rgb[:, :, None, None]
    x = x + 0.08 * rng.standard_normal(x.shape)
    return torch.from_numpy(np.clip(x, 0, 1).astype(np.float32)), torch.from_numpy(y.astype(np.int64))


@DATASETS.register("synth32")
def synth32(seed: int = 0, download: bool = False) -> Split:
    """10 procedural colour classes, 3x32x32 (offline, generated): train 1,000 / test 300 / defender 300."""
    x, y = _images()
    full = Data(x.clone(), y.clone())
    train, rest = full.split(N_TRAIN, seed)
    test, defender = rest.split(N_TEST, seed + 1)
    names = tuple(f"{'red' if c % 2 == 0 else 'blue'}{36 * (c // 2)}°" for c in range(CLASSES))
    return from_parts("synth32", train, test, defender, names)
