"""Path-aware fine-tuning: push a defended model further from the backdoored one along the path between them.

Min et al. (NeurIPS 2024, arXiv 2410.09838) find that a purified model often stays close to the backdoored one, on
a low-loss path that a few poisoned samples walk back (the retuning attack of
:mod:`unlearnlib.evaluation.reactivation`), and propose Path-Aware Minimization (PAM): fine-tune on clean data
with each step's gradient taken at a point moved *ahead* along the backdoor-connected path,

    g = grad L_clean(theta + rho * (theta - theta_b) / ||theta - theta_b||),    theta <- step(theta, g),

so the update favours weights whose whole neighbourhood in that direction is good on clean data, away from the
backdoored weights theta_b. *[ours]*: rho is ``alpha`` times the defended model's initial distance from the
backdoored one (scale-free across architectures); the direction is recomputed from the current weights each
step; Adam on the defender's clean images, with the one training loop (:func:`unlearnlib.ml.train.train`).

Example::

    deeper = path_aware_finetune(defended, backdoored, defender_images, alpha=1.0, epochs=10)
"""

from __future__ import annotations

import copy
from collections.abc import Callable

import torch
from torch import nn

from ..core.checks import check_classifier, check_positive_number
from ..data import Data
from .train import train


def _flat(model: nn.Module) -> torch.Tensor:
    return torch.cat([p.detach().flatten() for p in model.parameters()])


def path_step(reference: nn.Module, rho: float) -> Callable[[nn.Module], Callable[[], None]]:
    """The perturbation of :func:`~unlearnlib.ml.train.train`: move the weights by ``rho`` along
    (theta - theta_ref) / ||theta - theta_ref||; returns what moves them back."""
    ref = [p.detach().clone() for p in reference.parameters()]

    def perturb(model: nn.Module) -> Callable[[], None]:
        params = list(model.parameters())
        saved = [p.detach().clone() for p in params]
        with torch.no_grad():
            diff = [p - r.to(p.device) for p, r in zip(params, ref)]
            norm = torch.sqrt(sum((d.float() ** 2).sum() for d in diff))
            if norm > 0:
                for p, d in zip(params, diff):
                    p.add_(d, alpha=float(rho / norm))

        def restore() -> None:
            with torch.no_grad():
                for p, s in zip(params, saved):
                    p.copy_(s)
        return restore

    return perturb


def path_aware_finetune(model: nn.Module, reference: nn.Module, data: Data, *, alpha: float = 1.0,
                        epochs: int = 10, lr: float = 1e-3, batch_size: int = 64, seed: int = 0,
                        device: str | torch.device = "auto", progress: bool | None = None) -> nn.Module:
    """A copy of ``model`` fine-tuned on clean ``data`` with path-aware steps away from ``reference`` (the
    backdoored model): ``rho = alpha * ||theta_model - theta_reference||``; ``epochs`` of Adam at ``lr`` (constant)."""
    check_classifier(model)
    check_positive_number(alpha, "alpha")
    if [p.shape for p in model.parameters()] != [p.shape for p in reference.parameters()]:
        raise ValueError("reference must have the same architecture as model (the backdoored model it came from)")
    rho = float(alpha * (_flat(model).cpu() - _flat(reference).cpu()).norm())
    if rho == 0:
        raise ValueError("model equals reference: there is no path to follow (defend the model first)")
    return train(copy.deepcopy(model), data, epochs=epochs, lr=lr, batch_size=batch_size, optimizer="adam",
                 schedule="constant", seed=seed, device=device, progress=progress, desc="path-aware",
                 perturb=path_step(reference, rho))


def extrapolate(model: nn.Module, reference: nn.Module, alpha: float) -> nn.Module:
    """A copy of ``model`` moved ``alpha`` times further along the path from ``reference``:
    theta + alpha (theta - theta_ref) (task arithmetic's negation, Ilharco et al., ICLR 2023, arXiv 2212.04089)."""
    check_positive_number(alpha, "alpha")
    if [p.shape for p in model.parameters()] != [p.shape for p in reference.parameters()]:
        raise ValueError("reference must have the same architecture as model (the backdoored model it came from)")
    out = copy.deepcopy(model)
    with torch.no_grad():
        for p, r in zip(out.parameters(), reference.parameters()):
            p.add_(p - r.to(p.device), alpha=float(alpha))
    return out
