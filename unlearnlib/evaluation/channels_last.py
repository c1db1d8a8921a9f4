"""``python -m unlearnlib bench --layout``: what the channels-last memory layout buys on this machine.

The loops that backpropagate through a model (training, the trigger recoveries, BAERASE's unlearning, the attacks'
trigger optimisation) run inside :func:`unlearnlib.core.device.channels_last`. This benchmark is the evidence for
that choice: for each model, the milliseconds of three operations with the weights in the default (NCHW) and in
the channels-last (NHWC) layout, measured alternately in one process so that both see the same machine load:

- ``train step``: forward, cross-entropy, backward and an Adam step on a batch of ``train_batch`` images;
- ``grad to input``: forward and backward to the input of a frozen model (what a trigger recovery does), on a
  batch of ``probe_batch`` images;
- ``forward``: inference without autograd on ``probe_batch`` images (the library's evaluation keeps the default
  layout: not yet measured end to end).

``speedup`` = NCHW ms / NHWC ms (the median of ``repeats`` timings each). Random weights: the cost of these
operations does not depend on what the model learned.
"""

from __future__ import annotations

import contextlib
import statistics
import time
from collections.abc import Callable, Sequence

import pandas as pd
import torch
import torch.nn.functional as F

from ..core.checks import check_positive_int
from ..core.device import channels_last, configure_threads, resolve_device
from ..core.registry import MODELS
from ..models import build_model
from .scaling import MODELS as INPUTS
from .scaling import machine

COLUMNS = ["model", "input", "op", "batch", "nchw_ms", "nhwc_ms", "speedup", "threads", "machine"]


def _median_ms(fn: Callable[[], None], repeats: int, sync: Callable[[], None]) -> float:
    times = []
    for _ in range(repeats):
        sync()
        start = time.perf_counter()
        fn()
        sync()
        times.append(1e3 * (time.perf_counter() - start))
    return statistics.median(times)


def _operations(model: torch.nn.Module, xt: torch.Tensor, yt: torch.Tensor,
                xp: torch.Tensor) -> list[tuple[str, Callable[[], None], int]]:
    """The three timed operations (name, call, batch) on one model."""
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)

    def step() -> None:
        opt.zero_grad(set_to_none=True)
        F.cross_entropy(model.train()(xt), yt).backward()
        opt.step()

    def grad_to_input() -> None:
        x = xp.clone().requires_grad_(True)
        torch.autograd.grad(model.eval()(x).logsumexp(1).sum(), [x])

    def forward() -> None:
        with torch.no_grad():
            model.eval()(xp)

    return [("train step", step, len(xt)), ("grad to input", grad_to_input, len(xp)), ("forward", forward, len(xp))]


def run_layout(models: Sequence[str] | None = None, *, train_batch: int = 64, probe_batch: int = 256,
               repeats: int = 10, device: str | torch.device = "auto", seed: int = 0) -> pd.DataFrame:
    """One row per (model, operation): median milliseconds in each layout and their ratio (see the module). The
    channels-last column is what :func:`~unlearnlib.core.device.channels_last` does: for a model it keeps in NCHW on
    the CPU (:func:`~unlearnlib.core.device.nhwc_unsafe`, PreAct-ResNet18) both columns time NCHW."""
    for name, v in (("train_batch", train_batch), ("probe_batch", probe_batch), ("repeats", repeats)):
        check_positive_int(v, name)
    names = list(models) if models is not None else ["cnn", "preact-resnet18-w8"]
    unknown = [m for m in names if m not in INPUTS or m not in MODELS.names()]
    if unknown:
        raise ValueError(f"models must be drawn from {[m for m in INPUTS if m in MODELS.names()]}, got {unknown}")
    dev = resolve_device(device)
    threads = configure_threads()
    sync = torch.cuda.synchronize if dev.type == "cuda" else (lambda: None)
    rows = []
    for name in names:
        shape = INPUTS[name]
        torch.manual_seed(seed)
        model = build_model(name, shape[0], 10, shape[1]).to(dev)
        xt, yt = torch.rand(train_batch, *shape, device=dev), torch.randint(0, 10, (train_batch,), device=dev)
        xp = torch.rand(probe_batch, *shape, device=dev)
        for op, fn, batch in _operations(model, xt, yt, xp):
            ms = {}
            for layout in ("nchw", "nhwc", "nchw", "nhwc"):  # alternated, after one warm-up call each
                with channels_last(model) if layout == "nhwc" else contextlib.nullcontext():
                    fn()
                    ms.setdefault(layout, []).append(_median_ms(fn, repeats, sync))
            nchw, nhwc = min(ms["nchw"]), min(ms["nhwc"])
            rows.append({"model": name, "input": "x".join(map(str, shape)), "op": op, "batch": batch,
                         "nchw_ms": round(nchw, 2), "nhwc_ms": round(nhwc, 2), "speedup": round(nchw / nhwc, 2),
                         "threads": threads, "machine": machine()})
    return pd.DataFrame(rows, columns=COLUMNS)
