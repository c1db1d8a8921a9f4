"""The run memo: one trigger recovery (or one defense run) for every defense that asks for the same one.

A :class:`RecoveryMemo` (the grid runner keeps one per grid) is handed to :func:`unlearnlib.run_defense`; while a
defense runs, :func:`shared_or_compute` keys each recovery by a hash of the model's weights, of the defender data
and of the arguments. ``agme`` and ``agme-repair`` on the same
cell recover the trigger the same way, so the second reuses the first one's result instead of training the same
generators again. A whole blind defense run is shared the same way (:func:`shared_result`): ``baerase+repair``
starts with exactly the ``baerase`` run of the same cell (same model, samples, hyperparameters and seed; the grid's
records of the two were bit-identical), so it repairs a copy of that result instead of unlearning again.
Honest timing: every reuse *credits* the seconds the recovery took when it was computed
(``memo.credited``), and ``run_defense`` adds them to the defense's wall time, so each row reports what the defense
would cost on its own.
"""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import json
import time
from collections.abc import Callable, Iterator
from typing import Any, TypeVar

import torch
from torch import nn

R = TypeVar("R")


class RecoveryMemo:
    """Recoveries by key, and the seconds credited so far for reusing them."""

    def __init__(self) -> None:
        self.results: dict[str, Any] = {}
        self.credited = 0.0
        self.result_keys: list[str] = []  # the defense runs stored by shared_result, oldest first


RESULTS_KEPT = 32  # defense runs a memo keeps (oldest dropped): a grid reuses them within a cell or two


_active: list[RecoveryMemo | None] = [None]


def fingerprint(obj: Any) -> str:
    """A hash of tensors, models (their state), dataclasses (their fields in order: a data set's ``x`` and ``y``)
    and JSON-able values, nested in tuples and lists."""
    h = hashlib.sha256()

    def feed(o: Any) -> None:
        if isinstance(o, nn.Module):
            for name, t in o.state_dict().items():
                h.update(name.encode())
                feed(t)
        elif dataclasses.is_dataclass(o) and not isinstance(o, type):
            for f in dataclasses.fields(o):
                feed(getattr(o, f.name))
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


@dataclasses.dataclass
class _Stored:
    result: Any
    seconds: float


def shared_result(key_parts: Any, compute: Callable[[], R], fresh: Callable[[R, bool], R]) -> R:
    """``compute()``, or inside :func:`sharing` ``fresh(result, True)`` of an identical earlier call's result
    (``fresh`` returns a copy the caller may change; the first call gets ``fresh(result, False)``). The seconds it
    took, recoveries it reused included, are stored with it and credited to the memo at every reuse, as
    :func:`shared_or_compute` credits a recovery's. A memo keeps the last :data:`RESULTS_KEPT` results."""
    memo = _active[0]
    if memo is None:
        return compute()
    key = "result:" + fingerprint(key_parts)
    if key in memo.results:
        stored = memo.results[key]
        memo.credited += stored.seconds
        return fresh(stored.result, True)
    credit, start = memo.credited, time.perf_counter()
    result = compute()
    memo.results[key] = _Stored(result, time.perf_counter() - start + memo.credited - credit)
    memo.result_keys.append(key)
    while len(memo.result_keys) > RESULTS_KEPT:  # bounded: each holds a defended model
        memo.results.pop(memo.result_keys.pop(0), None)
    return fresh(result, False)
