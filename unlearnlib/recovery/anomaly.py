"""The MAD anomaly index (Neural Cleanse, Wang et al. 2019), shared by the trigger-recovery methods.

For per-class values ``v`` (mask norms, attack rates) with ``MAD = median_c |v_c - median(v)|``:

    a_c = (v_c - median(v)) / (1.4826 · max(MAD, mad_floor))                          (signed anomaly index)

Signed: ``a_c > 0`` means above the median (a suspiciously *high* attack rate), ``a_c < 0`` below it (a
suspiciously *small* mask). Neural Cleanse thresholds ``|a_c|``; the target search takes the largest ``a_c``.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch

from ..core.checks import check_positive_number

MAD_CONSISTENCY = 1.4826  # makes the MAD a consistent estimator of the standard deviation of a normal


def anomaly_index(values: Sequence[float] | torch.Tensor, mad_floor: float = 1e-12) -> torch.Tensor:
    """The signed MAD anomaly index of each value (take ``.abs()`` for Neural Cleanse's two-sided index).

    A tensor keeps its dtype; a sequence is read as float64. ``mad_floor`` (> 0) bounds the MAD from below, so
    values that are nearly all equal do not divide by zero.
    """
    check_positive_number(mad_floor, "mad_floor")
    v = values if isinstance(values, torch.Tensor) else torch.as_tensor(values, dtype=torch.float64)
    if v.dim() != 1 or len(v) == 0 or not v.is_floating_point():
        raise ValueError(f"values must be a non-empty 1-D sequence of floats, got {values!r}")
    med = v.median()
    mad = (v - med).abs().median().clamp(min=mad_floor)
    return (v - med) / (MAD_CONSISTENCY * mad)
