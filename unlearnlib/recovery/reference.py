"""A reference model for the target search *[ours]*: the suspect's own architecture, trained from scratch on the
defender's clean images.

Some architectures have *natural* triggers: on mnist5k a faint full-image blend sends most digits to class 0 or 8
on a clean BatchNorm network with global average pooling, and to class 2, 3 or 5 on a clean MLP, so the per-class
search (:func:`~unlearnlib.recovery.target_search.search_target`) flags those classes on backdoored and clean models
alike. Neural Cleanse (Wang et al., S&P 2019) names the effect and K-Arm (Shen et al., ICML 2021) compares candidate
labels by how hard they are to reach; a reference model trained on the defender's few images shares the
architecture's and the data's natural triggers but has no planted one (the same premise as the reference models of
Universal Litmus Patterns, Kolouri et al., CVPR 2020). A candidate class whose trigger, searched the same way, also
fires on the reference is taken for a natural trigger, not a backdoor.

Example::

    ref = reference_model(model, defender)                      # same architecture, fresh weights
    res = search_target(model, train, heldout, 10, reference=ref)  # res.natural: the classes set aside
"""

from __future__ import annotations

import copy

from torch import nn

from ..core.checks import check_positive_int
from ..core.device import forked_seed
from ..data import Data
from ..ml.edit import DENSE_SHIFTS, shift_augment
from ..ml.train import train

REFERENCE_EPOCHS, REFERENCE_LR, REFERENCE_BATCH = 10, 1e-3, 64  # [ours] docs/decisions/0018-natural-triggers.md


def reference_model(model: nn.Module, data: Data, *, epochs: int = REFERENCE_EPOCHS, lr: float = REFERENCE_LR,
                    batch_size: int = REFERENCE_BATCH, seed: int = 0, progress: bool | None = None) -> nn.Module:
    """A copy of ``model`` with every parameter re-initialised (``reset_parameters``, BatchNorm statistics too),
    trained with Adam at ``lr`` for ``epochs`` on ``data`` and each image shifted by every offset of up to two
    pixels (:data:`~unlearnlib.ml.edit.DENSE_SHIFTS`, 25 copies: a few dozen images are too few to train on
    alone). ``model`` is not changed. Deterministic under ``seed`` on the CPU."""
    check_positive_int(epochs, "epochs")
    if len(data) < 2:
        raise ValueError(f"data must hold at least 2 clean images to train a reference model, got {len(data)}")
    dev = next(model.parameters()).device
    ref = copy.deepcopy(model)
    for p in ref.parameters():
        p.requires_grad_(True)
    x = shift_augment(data.x.to(dev), DENSE_SHIFTS)
    y = data.y.to(dev).repeat(len(DENSE_SHIFTS))
    with forked_seed(seed, dev):  # the caller's RNG is left as it was
        for m in ref.modules():
            if hasattr(m, "reset_parameters") and m is not ref:
                m.reset_parameters()
        return train(ref, Data(x, y), epochs=epochs, lr=lr, batch_size=batch_size, device=dev, seed=seed,
                     progress=progress, desc="reference model")
