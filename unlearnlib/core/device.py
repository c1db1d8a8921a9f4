"""Device choice, thread count, seeding and mixed precision -- the only place that knows about hardware."""

from __future__ import annotations

import contextlib
import os
import random
from collections.abc import Iterator

import numpy as np
import torch

# Images per forward pass for inference over a whole set (evaluation, position heatmaps): past a few hundred images
# the activations leave the CPU's caches (docs/decisions/0012-cpu-speed.md).
INFERENCE_BATCH = 256


def resolve_device(device: str | torch.device = "auto") -> torch.device:
    """``"auto"`` picks CUDA when present, else the CPU; anything else is passed to :class:`torch.device`."""
    if isinstance(device, torch.device):
        return device
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        dev = torch.device(device)
    except (RuntimeError, TypeError) as exc:
        raise ValueError(f"device must be 'auto', 'cpu', 'cuda' or 'cuda:N', got {device!r}") from exc
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise ValueError(f"device={device!r} was asked for but CUDA is not available; use device='auto' or 'cpu'")
    return dev


def configure_threads() -> int:
    """Use every core the process may run on (intra-op), one inter-op thread; returns the count."""
    try:
        n = len(os.sched_getaffinity(0))
    except AttributeError:  # pragma: no cover - non-Linux
        n = os.cpu_count() or 1
    n = int(os.environ.get("UNLEARNLIB_THREADS", n))
    if torch.get_num_threads() != n:
        torch.set_num_threads(n)
    return n


def seed_everything(seed: int) -> torch.Generator:
    """Seed Python, NumPy and torch; return a CPU generator for explicit sampling."""
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)
    return torch.Generator().manual_seed(seed)


@contextlib.contextmanager
def forked_seed(seed: int, device: torch.device | str = "cpu") -> Iterator[None]:
    """Inside: torch's global RNG seeded with ``seed`` on the CPU and on ``device`` (as ``torch.manual_seed`` would);
    on exit: the caller's RNG states restored, so seeded code runs the same without reseeding anyone else."""
    device = torch.device(device)
    cuda = [device] if device.type == "cuda" else []
    with torch.random.fork_rng(devices=cuda, device_type="cuda"):
        torch.random.default_generator.manual_seed(seed)
        for d in cuda:
            with torch.cuda.device(d):
                torch.cuda.manual_seed(seed)
        yield


def autocast(device: torch.device) -> contextlib.AbstractContextManager:
    """bf16 autocast on CUDA (fp16 where bf16 is unsupported); a no-op on the CPU."""
    if device.type != "cuda":
        return contextlib.nullcontext()
    dtype = torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
    return torch.autocast("cuda", dtype=dtype)


@contextlib.contextmanager
def cpu_threads(n: int | None) -> Iterator[None]:
    """Run a block with ``n`` intra-op CPU threads (``None``: unchanged), restoring the previous count after.

    Many small ops (batches of 32 MNIST digits, MLPs of width 256) gain nothing from intra-op parallelism, and on
    a shared, loaded CPU the thread synchronisation can make them far slower (docs/decisions/0012-cpu-speed.md).
    """
    old = torch.get_num_threads()
    if n is not None and n != old:
        torch.set_num_threads(n)
    try:
        yield
    finally:
        if torch.get_num_threads() != old:
            torch.set_num_threads(old)


@contextlib.contextmanager
def default_threads(n: int | None) -> Iterator[None]:
    """Run a block as if ``UNLEARNLIB_THREADS=n`` (``None``: unchanged): every :func:`configure_threads` inside uses
    ``n`` threads (a stored run is re-run with the thread count it was made with: the order of a parallel sum, and
    so its rounding, can depend on it); the environment and the thread count are restored after."""
    if n is None:
        yield
        return
    old_env, old_n = os.environ.get("UNLEARNLIB_THREADS"), torch.get_num_threads()
    os.environ["UNLEARNLIB_THREADS"] = str(check_threads(n))
    try:
        configure_threads()
        yield
    finally:
        if old_env is None:
            os.environ.pop("UNLEARNLIB_THREADS", None)
        else:
            os.environ["UNLEARNLIB_THREADS"] = old_env
        torch.set_num_threads(old_n)


def check_threads(n: object) -> int:
    """A thread count: an integer >= 1."""
    if isinstance(n, bool) or not isinstance(n, int) or n < 1:
        raise ValueError(f"threads must be an integer >= 1, got {n!r}")
    return n


def nhwc_unsafe(model: torch.nn.Module) -> bool:
    """True for a model on the CPU that has a 1x1 convolution with a stride > 1 (a ResNet shortcut).

    PyTorch 2.14.1's CPU backward of such a convolution with channels-last weights can corrupt the heap (a segfault
    or "double free or corruption" on some batch sizes), and the layout gains little on such a model, so
    :func:`channels_last` keeps it in NCHW on the CPU rather than guess which shapes are safe; on CUDA the layout is
    kept. What was seen: docs/decisions/0012-cpu-speed.md."""
    convs = [m for m in model.modules() if isinstance(m, torch.nn.Conv2d)]
    return any(c.weight.device.type == "cpu" and tuple(c.kernel_size) == (1, 1) and max(c.stride) > 1 for c in convs)


@contextlib.contextmanager
def channels_last(model: torch.nn.Module) -> Iterator[torch.nn.Module]:
    """Run a block with the model's 4-D weights in channels-last memory layout, restored after (same values).

    PyTorch then runs every convolution of the block in NHWC whatever the inputs' layout (its oneDNN kernels on
    the CPU, tensor-core friendly ones on CUDA); ``python -m unlearnlib bench --layout`` measures what that buys on
    your machine (docs/decisions/0012-cpu-speed.md). The loops that backpropagate (training, trigger recoveries,
    BAERASE's unlearning, the attacks' trigger optimisation) run inside it. A model with no 4-D weight, or one
    already in channels-last layout, is left as it is, and so is a model on the CPU with a strided 1x1 convolution
    (:func:`nhwc_unsafe`).
    """
    four_d = [t for t in (*model.parameters(), *model.buffers()) if t.dim() == 4]
    if not four_d or all(t.is_contiguous(memory_format=torch.channels_last) for t in four_d) or nhwc_unsafe(model):
        yield model
        return
    model.to(memory_format=torch.channels_last)
    try:
        yield model
    finally:
        model.to(memory_format=torch.contiguous_format)


def progress_enabled(progress: bool | None = None) -> bool:
    """Progress bars on unless ``progress=False`` or ``UNLEARNLIB_PROGRESS=0`` (the book build sets it)."""
    if progress is not None:
        return progress
    return os.environ.get("UNLEARNLIB_PROGRESS", "1") != "0"
