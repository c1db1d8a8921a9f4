"""The one training loop, for clean and poisoned training and for every fine-tuning defense.

On CUDA the whole dataset is moved to the device once and the forward pass runs under bf16 autocast; on the CPU
the loop is deterministic under ``seed`` (same seed, same machine, same weights). Another CPU model can round
differently (PyTorch and its math libraries pick their vector instructions and code paths per CPU: AVX-512 on one,
AVX2 on another), and a few epochs amplify the last bit into different weights.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import nn
from tqdm.auto import tqdm

from ..core.checks import check_classifier, check_positive_int
from ..core.device import autocast, channels_last, configure_threads, progress_enabled, resolve_device
from ..data import Data


def random_crop_flip(x: torch.Tensor, pad: int = 4) -> torch.Tensor:
    """Per-sample random crop (reflect padding) and horizontal flip, on whatever device ``x`` is."""
    n, c, h, w = x.shape
    xp = F.pad(x, (pad, pad, pad, pad), mode="reflect")
    i = torch.randint(0, 2 * pad + 1, (n,), device=x.device)
    j = torch.randint(0, 2 * pad + 1, (n,), device=x.device)
    rows = (i[:, None] + torch.arange(h, device=x.device))[:, None, :, None]
    cols = (j[:, None] + torch.arange(w, device=x.device))[:, None, None, :]
    batch = torch.arange(n, device=x.device)[:, None, None, None]
    chan = torch.arange(c, device=x.device)[None, :, None, None]
    out = xp[batch, chan, rows, cols]
    flip = torch.rand(n, device=x.device) < 0.5
    return torch.where(flip[:, None, None, None], out.flip(3), out)


class DivergenceError(ValueError):
    """A loss became NaN/inf; the message names the step and the hyperparameter to lower."""


def descend(opt: torch.optim.Optimizer, loss: torch.Tensor, where: str, hint: str,
            before_step: Callable[[], None] | None = None) -> None:
    """One optimiser step on ``loss`` (zero_grad, backward, step), after checking that it is finite: a NaN/inf
    loss raises :class:`DivergenceError` naming ``where`` and ``hint`` instead of corrupting the weights.
    ``before_step`` runs between the backward pass and the step (e.g. undoing a perturbation of the weights)."""
    if not torch.isfinite(loss):
        raise DivergenceError(f"{where} diverged (loss={float(loss.detach())}); {hint}")
    opt.zero_grad(set_to_none=True)
    loss.backward()
    if before_step is not None:
        before_step()
    opt.step()


AUGMENTATIONS: dict[str, Callable[[torch.Tensor], torch.Tensor] | None] = {"none": None, "crop-flip": random_crop_flip}


def train(model: nn.Module, data: Data, *, epochs: int = 8, lr: float = 1e-3, batch_size: int = 128,
          optimizer: str = "adam", weight_decay: float = 0.0, augment: str = "none", schedule: str = "cosine",
          params: list[nn.Parameter] | None = None, device: str | torch.device = "auto", seed: int = 0,
          progress: bool | None = None, desc: str = "train",
          before_epoch: Callable[[int, nn.Module], Data | None] | None = None,
          perturb: Callable[[nn.Module], Callable[[], None]] | None = None) -> nn.Module:
    """Minimise cross-entropy on ``data``; returns ``model`` (trained in place) in eval mode.

    ``params`` restricts the update to some parameters (fine-tuning a head); ``schedule`` is ``"cosine"``
    (per-step cosine decay to zero) or ``"constant"``. ``before_epoch(epoch, model)`` is called before every
    epoch; if it returns a ``Data`` of the same size, the epoch trains on it (an attack that re-poisons the data
    as it goes, like IMC). ``perturb(model)`` moves the weights before each step's forward pass and returns what
    puts them back, called after the backward pass: the gradient taken at the moved point updates the weights
    (sharpness- or path-aware minimisation, :mod:`unlearnlib.ml.path_aware`).
    """
    check_classifier(model)
    check_positive_int(epochs, "epochs")
    check_positive_int(batch_size, "batch_size")
    if optimizer not in ("adam", "sgd"):
        raise ValueError(f"optimizer must be 'adam' or 'sgd', got {optimizer!r}")
    if augment not in AUGMENTATIONS:
        raise ValueError(f"augment must be one of {list(AUGMENTATIONS)}, got {augment!r}")
    if schedule not in ("cosine", "constant"):
        raise ValueError(f"schedule must be 'cosine' or 'constant', got {schedule!r}")
    dev = resolve_device(device)
    configure_threads()
    torch.manual_seed(seed)
    model.to(dev).train()
    x, y = data.x.to(dev), data.y.to(dev)  # resident on the device for the whole run
    trainable = params if params is not None else [p for p in model.parameters() if p.requires_grad]
    opt: torch.optim.Optimizer
    if optimizer == "adam":
        opt = torch.optim.Adam(trainable, lr=lr, weight_decay=weight_decay)
    else:
        opt = torch.optim.SGD(trainable, lr=lr, momentum=0.9, nesterov=True, weight_decay=weight_decay)
    steps_per_epoch = math.ceil(len(data) / batch_size)
    total = epochs * steps_per_epoch
    sched = torch.optim.lr_scheduler.LambdaLR(
        opt, (lambda s: 0.5 * (1 + math.cos(math.pi * s / total))) if schedule == "cosine" else (lambda s: 1.0))
    aug = AUGMENTATIONS[augment]
    g = torch.Generator().manual_seed(seed)
    bar = tqdm(range(epochs), desc=desc, disable=not progress_enabled(progress), leave=False)
    with channels_last(model):  # convolutions in NHWC (unlearnlib.core.device.channels_last)
        for epoch in bar:
            if before_epoch is not None:
                new = before_epoch(epoch, model)
                model.train()
                if new is not None:
                    if len(new) != len(data):
                        raise ValueError(f"before_epoch must return data of the same size ({len(data)}), "
                                         f"got {len(new)}")
                    x, y = new.x.to(dev), new.y.to(dev)
            order = torch.randperm(len(data), generator=g).to(dev)
            running = 0.0
            for start in range(0, len(data), batch_size):
                idx = order[start:start + batch_size]
                xb = x[idx] if aug is None else aug(x[idx])
                restore = perturb(model) if perturb is not None else None
                with autocast(dev):
                    loss = F.cross_entropy(model(xb), y[idx])
                descend(opt, loss, f"{desc} at epoch {epoch}", f"lower lr (now {lr})", restore)
                sched.step()
                running += float(loss.detach()) * len(idx)
            bar.set_postfix(loss=f"{running / len(data):.3f}")
    return model.eval()
