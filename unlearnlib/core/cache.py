"""The one on-disk cache: trained models keyed by a hash of their full configuration, the package version and
the source code they were computed by (:func:`source_fingerprint`), so an edited training loop or model never
reuses a stale file.

Files are written atomically (temporary file + rename). A file that cannot be read, or whose stored key or
configuration does not match, is reported, removed and rebuilt. Loading uses ``torch.load(weights_only=True)``:
a cache file can never run code.
"""

from __future__ import annotations

import functools
import hashlib
import json
import os
import tempfile
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any, Protocol

import torch
from torch import nn

from .version import __version__

FORMAT = 1
PACKAGE = Path(__file__).resolve().parents[1]  # unlearnlib/
# the code a trained model depends on: its data, architecture, attack, the training loop and what the attacks use
MODEL_SOURCES = ("data", "models", "attacks", "ml", "core/device")


@functools.cache
def source_fingerprint(modules: tuple[str, ...] | None = None) -> str:
    """A hash of the package's source: of ``modules`` (paths relative to the package without ``.py``, e.g.
    ``"ml/train"``; a sub-package such as ``"attacks"`` stands for all its files), or of every ``.py`` file in it
    when ``None``."""
    if modules is None:
        files = sorted(PACKAGE.rglob("*.py"))
    else:
        files = [f for m in modules for f in
                 (sorted((PACKAGE / m).rglob("*.py")) if (PACKAGE / m).is_dir() else [PACKAGE / f"{m}.py"])]
    h = hashlib.sha256()
    for f in files:
        h.update(f.relative_to(PACKAGE).as_posix().encode() + b"\0" + f.read_bytes() + b"\0")
    return h.hexdigest()[:16]


def cache_dir() -> Path:
    """``$UNLEARNLIB_CACHE`` or ``~/.cache/unlearnlib``."""
    return Path(os.environ.get("UNLEARNLIB_CACHE", Path.home() / ".cache" / "unlearnlib"))


def cache_key(config: dict[str, Any]) -> str:
    blob = json.dumps({"config": config, "version": __version__, "code": source_fingerprint(MODEL_SOURCES)},
                      sort_keys=True, default=str)
    return hashlib.sha256(blob.encode()).hexdigest()[:20]


def atomic_write(path: Path, write: Callable[[Path], None]) -> None:
    """Call ``write(tmp)`` on a temporary file next to ``path``, then rename it into place."""
    atomic_write_all([(path, write)])


def atomic_write_all(writes: list[tuple[Path, Callable[[Path], None]]]) -> None:
    """Several files as one step: every ``write(tmp)`` runs on a temporary file first; only when all succeeded are
    they renamed into place. A failing write leaves no file changed; a failing rename (rare: same folder)
    removes the files already renamed, so no partial set remains."""
    tmps: list[Path] = []
    try:
        for path, write in writes:
            path.parent.mkdir(parents=True, exist_ok=True)
            fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
            os.close(fd)
            tmps.append(Path(tmp))
            write(Path(tmp))
        done: list[Path] = []
        try:
            for tmp, (path, _) in zip(tmps, writes):
                os.replace(tmp, path)
                done.append(path)
        except BaseException:
            for path in done:
                path.unlink(missing_ok=True)
            raise
    finally:
        for tmp in tmps:
            tmp.unlink(missing_ok=True)


def atomic_write_text(path: Path, text: str) -> None:
    atomic_write(path, lambda p: p.write_text(text))


def model_path(config: dict[str, Any]) -> Path:
    return cache_dir() / "models" / f"{cache_key(config)}.pt"


class Stateful(Protocol):
    def state_dict(self) -> dict[str, torch.Tensor]: ...

    def load_state_dict(self, state: dict[str, torch.Tensor]) -> Any: ...


def _load(path: Path, config: dict[str, Any], model: nn.Module, companion: Stateful | None = None) -> bool:
    """Load into ``model`` (and ``companion``); False if absent; warn and delete if corrupt or mismatched."""
    if not path.exists():
        return False
    try:
        blob = torch.load(path, map_location="cpu", weights_only=True)
        if not isinstance(blob, dict) or blob.get("format") != FORMAT:
            raise ValueError("unknown file format")
        stored_config = json.dumps(config, sort_keys=True, default=str)
        if blob.get("key") != cache_key(config) or blob.get("config") != stored_config:
            raise ValueError("stored configuration does not match")
        model.load_state_dict(blob["state_dict"])
        if companion is not None:
            companion.load_state_dict(blob.get("companion", {}))
        return True
    except Exception as exc:  # any unreadable / mismatched file is rebuilt, never trusted
        warnings.warn(f"cache file {path} is corrupt or mismatched ({exc}); rebuilding it", stacklevel=3)
        path.unlink(missing_ok=True)
        return False


def cached_model(config: dict[str, Any], build: Callable[[], nn.Module], fit: Callable[[nn.Module], nn.Module],
                 companion: Stateful | None = None) -> tuple[nn.Module, bool]:
    """The model for ``config``: loaded from the cache, or built, fitted and stored. Returns (model, hit).

    ``companion`` (a trigger learned while fitting, e.g. IMC's) has its ``state_dict()`` tensors stored in the same
    file after ``fit`` and restored by ``load_state_dict`` on a hit."""
    path = model_path(config)
    model = build()
    if _load(path, config, model, companion):
        return model.eval(), True
    model = fit(model)
    blob = {"format": FORMAT, "key": cache_key(config), "config": json.dumps(config, sort_keys=True, default=str),
            "state_dict": {k: v.detach().cpu() for k, v in model.state_dict().items()},
            "companion": {} if companion is None else {k: v.detach().cpu()
                                                       for k, v in companion.state_dict().items()}}
    atomic_write(path, lambda p: torch.save(blob, p))
    return model.eval(), False
