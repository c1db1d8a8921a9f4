"""Weight files: load a checkpoint safely into a model, and save one in the same format.

Formats, chosen by the file's suffix:

- ``.safetensors``: a flat name -> tensor table (``safetensors.torch``); it cannot hold code.
- anything else (``.pt``, ``.pth``, ``.bin``...): a ``state_dict`` saved with ``torch.save(model.state_dict(),
  path)``, read with ``torch.load(weights_only=True)``, which refuses pickled objects (a whole ``nn.Module``),
  because unpickling can run arbitrary code. A dict holding the state dict under ``"state_dict"`` (a common
  training-checkpoint layout) is accepted too; the defended weights are written as a plain state dict.

Trigger files (a mask and a pattern) are read and written by :mod:`unlearnlib.ml.triggers`.
"""

from __future__ import annotations

import pickle
import re
from collections.abc import Mapping
from pathlib import Path

import torch
from torch import nn

from .cache import atomic_write


def is_safetensors(path: Path) -> bool:
    return Path(path).suffix.lower() == ".safetensors"


def torch_load(path: Path, param: str) -> object:
    """``torch.load(path, weights_only=True)`` on the CPU, with errors naming ``param`` and what is wrong."""
    path = Path(path)
    if not path.is_file():
        raise ValueError(f"{param}={str(path)!r} does not exist" if not path.exists() else
                         f"{param}={str(path)!r} is not a file")
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as exc:
        found = re.search(r"GLOBAL ([\w.]+)", str(exc))
        what = f" ({found.group(1)})" if found else ""
        raise ValueError(f"{param}={str(path)!r} holds a pickled Python object{what}, which weights_only loading "
                         "refuses because unpickling can run code; save the tensors only: "
                         "torch.save(model.state_dict(), path)") from exc
    except (RuntimeError, EOFError, OSError) as exc:
        raise ValueError(f"{param}={str(path)!r} is not a torch.save file ({type(exc).__name__}: "
                         f"{str(exc).splitlines()[0][:160] if str(exc) else ''})") from exc


def load_state_dict(path: str | Path, param: str = "model_file") -> dict[str, torch.Tensor]:
    """The tensors of a ``.safetensors`` file or a ``torch.save``'d state dict (see the module docstring)."""
    path = Path(path)
    if is_safetensors(path):
        from safetensors import SafetensorError
        from safetensors.torch import load_file

        if not path.is_file():
            raise ValueError(f"{param}={str(path)!r} does not exist")
        try:
            return load_file(str(path), device="cpu")
        except (SafetensorError, OSError) as exc:
            raise ValueError(f"{param}={str(path)!r} is not a readable safetensors file ({exc})") from exc
    blob = torch_load(path, param)
    if isinstance(blob, Mapping) and "state_dict" in blob and isinstance(blob["state_dict"], Mapping):
        blob = blob["state_dict"]
    if not isinstance(blob, Mapping) or not blob or not all(
            isinstance(k, str) and isinstance(v, torch.Tensor) for k, v in blob.items()):
        keys = f" with keys {list(blob)[:5]}" if isinstance(blob, Mapping) else ""
        raise ValueError(f"{param}={str(path)!r} must hold a state dict (parameter name -> tensor), got "
                         f"{type(blob).__name__}{keys}")
    return dict(blob)


def _brief(names: list[str], n: int = 4) -> str:
    return ", ".join(names[:n]) + (f" and {len(names) - n} more" if len(names) > n else "")


def load_weights(model: nn.Module, path: str | Path, param: str = "model_file", arch: str | None = None) -> nn.Module:
    """Load the checkpoint at ``path`` into ``model`` (strictly: every key present, every shape equal, every value
    finite), with one brief error listing missing keys, unexpected keys and shape mismatches when it does not match,
    or naming the tensors that hold NaN or inf."""
    state = load_state_dict(path, param)
    own = model.state_dict()
    missing = [k for k in own if k not in state]
    unexpected = [k for k in state if k not in own]
    shapes = [f"{k} {tuple(state[k].shape)} != {tuple(v.shape)}" for k, v in own.items()
              if k in state and state[k].shape != v.shape]
    if missing or unexpected or shapes:
        what = [f"{len(missing)} missing key(s) ({_brief(missing)})" if missing else "",
                f"{len(unexpected)} unexpected key(s) ({_brief(unexpected)})" if unexpected else "",
                f"{len(shapes)} shape mismatch(es) (checkpoint != model: {_brief(shapes, 3)})" if shapes else ""]
        name = arch or type(model).__name__
        raise ValueError(f"{param}={str(path)!r} does not match arch={name!r} for this data: "
                         + "; ".join(w for w in what if w)
                         + " (check --arch, and that the data's channels, classes and image size are the model's)")
    bad = [k for k in own if state[k].is_floating_point() and not torch.isfinite(state[k]).all()]
    if bad:
        raise ValueError(f"{param}={str(path)!r} holds non-finite values (NaN or inf) in {len(bad)} tensor(s): "
                         f"{_brief(bad)}; the checkpoint is broken (a training run that diverged?)")
    model.load_state_dict({k: state[k].to(own[k].dtype) for k in own})
    return model


def save_weights(model: nn.Module, path: str | Path) -> None:
    """Write ``model``'s state dict to ``path`` atomically, as safetensors or with ``torch.save`` by suffix."""
    state = state_of(model)
    atomic_write(Path(path), lambda tmp: write_weights(state, tmp, Path(path)))


def state_of(model: nn.Module) -> dict[str, torch.Tensor]:
    """The state dict on the CPU, contiguous and unshared (what safetensors requires)."""
    return {k: v.detach().cpu().contiguous().clone() for k, v in model.state_dict().items()}


def write_weights(state: dict[str, torch.Tensor], tmp: Path, like: Path) -> None:
    """Write ``state`` to ``tmp`` (no rename) in the format that ``like``'s suffix names."""
    if is_safetensors(like):
        from safetensors.torch import save_file

        save_file(state, str(tmp))
    else:
        torch.save(state, tmp)

