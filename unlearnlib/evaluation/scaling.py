"""``python -m unlearnlib bench --scaling``: what each defense costs as the model grows, on this machine.

For every (model, defense) cell: wall seconds of the defense call, the peak resident memory it added, and for the
closed-form edits the edited layers with their dimension d, number of keys n and solve form (``dual``: an n x n
system, ``primal``: d x d; :func:`unlearnlib.ml.edit.solve_form`), with the linear algebra's own
seconds. Models get random weights (seeded): the cost of a defense does not depend on what the model learned,
except where a defense stops early (BAERASE's stop rule, fine-pruning's tolerance), which random weights make
neither cheaper nor dearer in a way worth a trained ResNet.

Memory (``peak_mib``): the peak resident memory the defense added above what the process held just before it
(model, data and imports loaded), in MiB. Each cell runs in a fresh Python process; on Linux the kernel's
high-water mark is reset just before the defense (``/proc/self/clear_refs`` <- 5) and ``peak_mib = VmHWM -
VmRSS(before)`` from ``/proc/self/status`` (``mem_method="VmHWM"``); elsewhere it is the growth of
``resource.getrusage(RUSAGE_SELF).ru_maxrss`` (``"ru_maxrss delta"``: 0 when the defense stays below the peak
of loading). On CUDA, ``torch.cuda.max_memory_allocated`` is reported as well.
"""

from __future__ import annotations

import json
import os
import platform
import resource
import subprocess
import sys
import time
from collections.abc import Sequence
from typing import Any

import pandas as pd
import torch
from tqdm.auto import tqdm

from ..attacks import make_trigger
from ..core.device import configure_threads, progress_enabled, seed_everything
from ..core.registry import DEFENSES
from ..core.registry import MODELS as REGISTERED
from ..data import load_dataset
from ..defenses import get_defense
from ..models import build_model

MODELS = {"cnn": (1, 28, 28), "lenet5": (1, 32, 32), "preact-resnet18-w8": (3, 32, 32),
          "preact-resnet18": (3, 32, 32)}  # lenet5: used when registered
COLUMNS = ["model", "params", "input", "defense", "unseen", "seconds", "peak_mib", "mem_method", "threads",
           "edit_seconds", "solve_seconds", "layers", "dims", "keys", "solve_forms", "status", "error"]


def machine() -> str:
    """This machine in a few words: the processor and the cores this process may use."""
    cpu = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo") as f:
            cpu = next((ln.split(":", 1)[1].strip() for ln in f if ln.startswith("model name")), cpu)
    except OSError:
        pass
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    return f"{cpu}, {cores} cores"


def _status_mib(key: str) -> float:
    with open("/proc/self/status") as f:
        return next(int(ln.split()[1]) for ln in f if ln.startswith(key + ":")) / 1024  # kB


def _reset_peak() -> bool:
    """Reset the kernel's resident high-water mark (VmHWM) to the current RSS; False where that is not possible."""
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
        _status_mib("VmHWM")
        return True
    except (OSError, StopIteration):
        return False


def _maxrss_mib() -> float:
    kib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # KiB on Linux (bytes on macOS)
    return kib / (1024 * 1024) if sys.platform == "darwin" else kib / 1024


def _cell(model_name: str, shape: tuple[int, int, int], defense: str, unseen: int, params: dict[str, Any],
          device: str, seed: int) -> dict[str, Any]:
    """One measurement, in the current process (the worker of :func:`measure`)."""
    configure_threads()
    seed_everything(seed)
    model = build_model(model_name, shape[0], 10, shape[1]).eval()
    split = load_dataset("mnist5k" if shape[0] == 1 else "synth32", seed=seed)
    x = split.defender.x
    if tuple(x.shape[1:]) != shape:  # e.g. LeNet-5's 32x32 input from 28x28 digits: zero padding, as in LeNet
        pad = (shape[2] - x.shape[3]) // 2, (shape[1] - x.shape[2]) // 2
        x = torch.nn.functional.pad(x, (pad[0], shape[2] - x.shape[3] - pad[0], pad[1], shape[1] - x.shape[2] - pad[1]))
    defender = type(split.defender)(x, split.defender.y).take(unseen, seed)
    d = get_defense(defense, device=device, seed=seed, progress=False, **params)
    trigger = make_trigger("badnets", shape) if d.needs_trigger else None
    if device != "cpu" and torch.cuda.is_available():
        torch.cuda.reset_peak_memory_stats()
    hwm = _reset_peak()
    rss0 = _status_mib("VmRSS") if hwm else _maxrss_mib()
    start = time.perf_counter()
    out = d(model, defender, trigger=trigger, num_classes=10)
    seconds = time.perf_counter() - start
    peak = (_status_mib("VmHWM") if hwm else _maxrss_mib()) - rss0
    info = out.info
    row = {"model": model_name, "params": sum(p.numel() for p in model.parameters()),
           "input": "x".join(map(str, shape)), "defense": defense, "unseen": unseen, "seconds": seconds,
           "peak_mib": peak,
           "mem_method": "VmHWM" if hwm else "ru_maxrss delta", "threads": torch.get_num_threads(),
           "edit_seconds": info.get("edit_seconds"), "solve_seconds": info.get("solve_seconds"),
           "layers": " ".join(info.get("layers", [])) or None,
           "dims": " ".join(map(str, info.get("dims", []))) or None,
           "keys": " ".join(map(str, info.get("keys", []))) or None,
           "solve_forms": " ".join(info.get("solve_forms", [])) or None, "status": "ok", "error": ""}
    if device != "cpu" and torch.cuda.is_available():
        row["cuda_peak_mib"] = torch.cuda.max_memory_allocated() / 2**20
    return row


def _cell_main() -> None:
    """Entry point of the fresh process: a JSON list of :func:`_cell`'s arguments on stdin, its row on stdout."""
    args = json.loads(sys.stdin.read())
    try:
        row = _cell(args[0], tuple(args[1]), *args[2:])
    except Exception as exc:  # reported as a failed cell
        row = {"status": "failed", "error": f"{type(exc).__name__}: {exc}"}
    sys.stdout.write("\n" + json.dumps(row, default=str))


def measure(model_name: str, defense: str, unseen: int, params: dict[str, Any] | None = None,
            device: str = "cpu", seed: int = 0) -> dict[str, Any]:
    """One cell in a fresh Python process; a defense that raises gives a row with ``status="failed"``."""
    shape = MODELS[model_name]
    args = [model_name, list(shape), defense, unseen, params or {}, device, seed]
    proc = subprocess.run([sys.executable, "-c", "from unlearnlib.evaluation.scaling import _cell_main; _cell_main()"],
                          input=json.dumps(args), capture_output=True, text=True, check=False)
    try:
        row = json.loads(proc.stdout.strip().splitlines()[-1])
    except (IndexError, ValueError):
        row = {"status": "failed", "error": f"worker exited with {proc.returncode}: {proc.stderr.strip()[-500:]}"}
    return {"model": model_name, "input": "x".join(map(str, shape)), "defense": defense, "unseen": unseen, **row}


def run_scaling(models: Sequence[str] | None = None, defenses: Sequence[str] | None = None,
                unseen: int | None = None, params: dict[str, dict[str, Any]] | None = None,
                device: str = "cpu", seed: int = 0, progress: bool | None = None) -> pd.DataFrame:
    """Every (model, defense) cell: defaults are every registered model of :data:`MODELS` and every registered
    defense but ``none``, each with its own default ``unseen`` and hyperparameters (``params[defense]`` overrides).
    The command line writes the table (``bench --scaling``)."""
    names = [m for m in MODELS if m in REGISTERED] if models is None else list(models)
    for m in names:
        if m not in MODELS:
            raise ValueError(f"models: {m!r} has no input shape here; expected some of {', '.join(MODELS)}")
        REGISTERED.get(m)  # unknown names raise, listing the registered ones
    dfs = [d for d in DEFENSES.names() if d != "none"] if defenses is None else list(defenses)
    for d in dfs:
        DEFENSES.get(d)
    params = params or {}
    rows = []
    cells = [(m, d) for m in names for d in dfs]
    for m, d in tqdm(cells, desc="scaling", disable=not progress_enabled(progress), unit="cell"):
        n = DEFENSES.get(d).default_unseen if unseen is None else unseen
        rows.append(measure(m, d, n, params.get(d), device, seed))
    return pd.DataFrame(rows).reindex(columns=COLUMNS + (["cuda_peak_mib"] if device != "cpu" else []))
