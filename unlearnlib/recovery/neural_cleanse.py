"""Neural Cleanse (Wang et al. 2019): reverse-engineer one trigger per class and flag the outlying class.

For every class c a mask ``m_c`` (1 x H x W) and a pattern ``p_c`` (C x H x W) are optimised on the defender's
clean samples x so that the stamped input is classified as c while the mask stays small:

    min_{m_c, p_c}  CE( f((1 - m_c) * x + m_c * p_c), c ) + lam * ||m_c||_1                  (NC objective)

with ``m = (tanh(a) + 1) / 2`` and ``p = (tanh(b) + 1) / 2`` keeping both in [0, 1]. The backdoor target needs
a much smaller mask than any other class. With ``n_c = ||m_c||_1`` and ``MAD = median_c |n_c - median(n)|``:

    anomaly_index(c) = |n_c - median(n)| / (1.4826 * MAD)                       (MAD anomaly index, absolute)

and the flagged target is the class with the smallest norm among those below the median with index > 2.

*[ours]* All K classes are optimised at once: one batched forward over the K stamped copies of the samples
(much faster on a CPU than K loops) and a fixed ``lam`` instead of the paper's adaptive schedule.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn
from tqdm.auto import tqdm

from ..core.checks import check_class, check_classifier, check_number, check_positive_int, check_positive_number
from ..core.device import channels_last, configure_threads, progress_enabled, resolve_device
from ..data import Data
from ..ml.train import descend
from ..ml.triggers import Trigger
from .anomaly import anomaly_index

ANOMALY_THRESHOLD = 2.0


@dataclass
class NeuralCleanseResult:
    """Recovered masks ``(K, 1, H, W)`` and patterns ``(K, C, H, W)``, their L1 norms and anomaly indices.

    Row k describes ``classes[k]`` (all classes by default, so row k is class k).
    """

    masks: torch.Tensor
    patterns: torch.Tensor
    mask_norms: torch.Tensor
    anomaly_index: torch.Tensor
    target: int
    detected: bool
    classes: list[int]
    attack_success: torch.Tensor  # (K,) fraction of the samples sent to class c by its recovered trigger

    def trigger(self, c: int) -> Trigger:
        """The recovered trigger ``T_c(x) = (1 - m_c) x + m_c p_c`` of class ``c``."""
        if c not in self.classes:
            raise ValueError(f"c must be one of the classes Neural Cleanse ran on {self.classes}, got {c!r}")
        k = self.classes.index(c)
        return Trigger(self.masks[k].clone(), self.patterns[k].clone())

    def to_info(self) -> dict[str, object]:
        """JSON-serialisable summary for a defense's ``info``."""
        return {"nc_target": self.target, "nc_detected": self.detected, "nc_classes": list(self.classes),
                "nc_mask_norms": [round(float(v), 4) for v in self.mask_norms],
                "nc_anomaly_index": [round(float(v), 4) for v in self.anomaly_index]}


def flag_target(norms: torch.Tensor, index: torch.Tensor, classes: list[int],
                threshold: float = ANOMALY_THRESHOLD) -> tuple[int, bool]:
    """The smallest-norm class with ``index > threshold`` (and norm below the median); else the smallest norm."""
    order = norms.argsort().tolist()
    med = norms.median()
    for k in order:
        if index[k] > threshold and norms[k] < med:
            return classes[k], True
    return classes[order[0]], False


def neural_cleanse(model: nn.Module, data: Data, num_classes: int, *, steps: int = 100, lr: float = 0.1,
                   lam: float = 0.1, classes: list[int] | None = None, device: str | torch.device = "auto",
                   seed: int = 0, progress: bool | None = None, batch_size: int = 10) -> NeuralCleanseResult:
    """Optimise the NC objective for every class in ``classes`` (default all) jointly; return the result.

    ``steps`` Adam steps with learning rate ``lr`` on the tanh parameters; each step uses ``batch_size`` of the
    defender samples (all of them when fewer), stamped with every class's trigger in one batched forward.
    """
    check_classifier(model)
    check_positive_int(num_classes, "num_classes", minimum=2)
    check_positive_int(steps, "steps")
    check_positive_int(batch_size, "batch_size")
    if not isinstance(data, Data) or len(data) == 0:
        raise ValueError("data must be a non-empty unlearnlib.data.Data set of clean defender samples")
    check_positive_number(lr, "lr")
    check_number(lam, "lam")
    cls = list(range(num_classes)) if classes is None else [check_class(c, num_classes, "classes") for c in classes]
    if len(cls) == 0 or len(set(cls)) != len(cls):
        raise ValueError(f"classes must be a non-empty list of distinct class indices, got {classes!r}")

    dev = resolve_device(device)
    configure_threads()
    gen = torch.Generator().manual_seed(seed)
    was_training = model.training
    model.eval()
    frozen = [p.requires_grad for p in model.parameters()]
    for p in model.parameters():
        p.requires_grad_(False)
    x_all = data.x.to(dev)
    n, c, h, w = x_all.shape
    k = len(cls)
    # init: a small mask (sigmoid(-2)~0.12 of each pixel's weight... via tanh: (tanh(-1)+1)/2 ~ 0.12), random pattern
    a = torch.full((k, 1, h, w), -1.0).add_(0.1 * torch.randn(k, 1, h, w, generator=gen)).to(dev).requires_grad_()
    b = (0.5 * torch.randn(k, c, h, w, generator=gen)).to(dev).requires_grad_()
    opt = torch.optim.Adam([a, b], lr=lr, betas=(0.5, 0.9))
    labels = torch.tensor(cls, device=dev).repeat_interleave(min(batch_size, n))
    bs = min(batch_size, n)
    try:
        with channels_last(model):  # NHWC convolutions for the backward passes
            for step in tqdm(range(steps), desc="neural cleanse", disable=not progress_enabled(progress), leave=False):
                idx = torch.randperm(n, generator=gen)[:bs].to(dev) if bs < n else slice(None)
                x = x_all[idx].unsqueeze(0)  # (1, B, C, H, W)
                m = (torch.tanh(a) + 1) / 2
                p = (torch.tanh(b) + 1) / 2
                stamped = ((1 - m.unsqueeze(1)) * x + (m * p).unsqueeze(1)).reshape(k * bs, c, h, w)
                ce = F.cross_entropy(model(stamped), labels, reduction="none").view(k, bs).mean(1)
                loss = (ce + lam * m.flatten(1).sum(1)).sum()
                descend(opt, loss, f"Neural Cleanse at step {step}", f"lower lr (now {lr})")
        with torch.no_grad():
            m = ((torch.tanh(a) + 1) / 2).detach()
            p = ((torch.tanh(b) + 1) / 2).detach()
            success = []
            for j, cj in enumerate(cls):
                pred = model((1 - m[j]) * x_all + m[j] * p[j]).argmax(1)
                success.append((pred == cj).float().mean())
    finally:
        for p_, f in zip(model.parameters(), frozen):
            p_.requires_grad_(f)
        model.train(was_training)
    norms = m.flatten(1).sum(1).cpu()
    index = anomaly_index(norms).abs()  # two-sided, as in the paper; flag_target keeps only norms below the median
    target, detected = flag_target(norms, index, cls)
    return NeuralCleanseResult(m.cpu(), p.cpu(), norms, index, target, detected, cls, torch.stack(success).cpu())
