"""Work that is really shared: one trigger recovery for every defense that asks for the same one.

A :class:`RecoveryMemo` (the benchmark keeps one per grid) is handed to
:func:`unlearnlib.experiment.run_defense`; while a defense runs, :func:`shared_or_compute` keys each recovery by a
hash of the model's weights, of the defender data and of the arguments. ``agme`` and ``agme-repair`` on the same
cell recover the trigger the same way, so the second reuses the first one's result instead of training the same
generators again. Honest timing: every reuse *credits* the seconds the recovery took when it was computed
(``memo.credited``), and ``run_defense`` adds them to the defense's wall time, so each row reports what the defense
would cost on its own.
"""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import json
from collections.abc import Callable, Iterator
from typing import Any, TypeVar

import torch
from torch import nn

from ..data import Data

R = TypeVar("R")


class RecoveryMemo:
    """Recoveries by key, and the seconds credited so far for reusing them."""

    def __init__(self) -> None:
        self.results: dict[str, Any] = {}
        self.credited = 0.0


_active: list[RecoveryMemo | None] = [None]


def fingerprint(obj: Any) -> str:
    """A hash of tensors, models (their state), :class:`Data` sets and JSON-able values, nested in tuples."""
    h = hashlib.sha256()

    def feed(o: Any) -> None:
        if isinstance(o, nn.Module):
            for name, t in o.state_dict().items():
                h.update(name.encode())
                feed(t)
        elif isinstance(o, Data):
            feed(o.x)
            feed(o.y)
        elif isinstance(o, torch.Tensor):
            t = o.detach().cpu().contiguous()
            h.update(str((t.dtype, tuple(t.shape))).encode() + t.reshape(-1).view(torch.uint8).numpy().tobytes())
        elif isinstance(o, (tuple, list)):
            for v in o:
                feed(v)
        else:
            h.update(json.dumps(o, sort_keys=True, default=str).encode())

    feed(obj)
    return h.hexdigest()


@contextlib.contextmanager
def sharing(memo: RecoveryMemo | None) -> Iterator[None]:
    """Within the block, recoveries go through ``memo`` (``None``: no sharing)."""
    outer = _active[0]
    _active[0] = memo
    try:
        yield
    finally:
        _active[0] = outer


def shared_or_compute(key_parts: Any, compute: Callable[[], R]) -> R:
    """``compute()``, or inside :func:`sharing` the stored result of an identical earlier call (a copy marked
    ``reused=True``, whose ``seconds`` are credited to the memo)."""
    memo = _active[0]
    if memo is None:
        return compute()
    key = fingerprint(key_parts)
    if key in memo.results:
        rec = memo.results[key]
        memo.credited += rec.seconds
        return dataclasses.replace(rec, reused=True)
    memo.results[key] = compute()
    return memo.results[key]
