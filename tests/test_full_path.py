"""The ``full`` path on the CPU: CIFAR-10 fixture files read by the real loader, PreAct-ResNet18 (1/8 width, the
same blocks, BatchNorm and layer names) poisoned by every attack and trained one short epoch, then every
registered defense on 3x32x32 inputs -- also on a BatchNorm model whose layers have other names.

What each defense does with BatchNorm (asserted below):

- ``agme-bdk``, ``agme``, ``agme-repair`` (closed-form edit): the model stays in eval mode; keys are read with
  the running statistics; only the edited Linear/Conv2d weights change -- every BN parameter and running
  statistic is the input model's (the edit maps triggered keys to the clean values of the same layer, so the
  statistics the next BN layer normalises with stay those of clean inputs).
- ``baerase``: unlearning runs in eval mode (running statistics frozen, never re-estimated on ~100 images); BN
  affine weights are ordinary parameters and are updated by the gradient steps.
- ``finetune``, ``fine-pruning``, ``nc-unlearn``: the one training loop puts the model in train mode, so the
  running statistics are re-estimated on the defender batches (momentum 0.1), as in ordinary fine-tuning; the
  result is returned in eval mode.

Budgets are small (few steps) to keep the file fast; they test the code path, not the defenses' quality.
Run alone with ``UNLEARNLIB_THREADS=1`` under load: the OpenMP barrier of two threads on two busy cores makes
each ResNet step ~10x slower.
"""

from __future__ import annotations

import math

import fixtures_data as fx
import pytest
import torch
import torchvision
from torch import nn

from unlearnlib.attacks import Attack, make_trigger
from unlearnlib.core.registry import ATTACKS, DEFENSES
from unlearnlib.data import load_dataset
from unlearnlib.defenses import get_defense
from unlearnlib.defenses.agme_bdk import AgmeBDK
from unlearnlib.ml.metrics import evaluate
from unlearnlib.ml.train import train
from unlearnlib.models import build_model

UNSEEN = 40
# the closed-form edits (BatchNorm untouched) and the compositions, read off the registry
EDITS = tuple(n for n in DEFENSES.names() if issubclass(DEFENSES.get(n), AgmeBDK))
REPAIRED = tuple(n for n in DEFENSES.names() if getattr(DEFENSES.get(n), "inner", None))


def smoke_params(defense: str) -> dict:
    """A few steps of the defense (its class's ``smoke_params``; a composition's inner defense's): every defense's
    defaults are sized for mnist5k."""
    cls = DEFENSES.get(defense)
    return dict(DEFENSES.get(getattr(cls, "inner", None) or defense).smoke_params)


@pytest.fixture(scope="module")
def cifar(tmp_path_factory):
    """The CIFAR-10 fixture read through ``load_dataset("cifar10")`` (md5 constants patched in this test only)."""
    root = tmp_path_factory.mktemp("data")
    fx.write_cifar10(root, per_batch=80, n_test=160)
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("UNLEARNLIB_DATA", str(root))
        for attr, value in fx.cifar10_md5s(root).items():
            mp.setattr(torchvision.datasets.CIFAR10, attr, value)
        return load_dataset("cifar10", seed=0)


@pytest.fixture(scope="module")
def attacked(cifar):
    """``attack -> (trigger, model)``: PreAct-ResNet18 (width 8) trained one epoch on the poisoned fixture."""
    out = {}
    for name in ATTACKS.names():
        trig = make_trigger(name, cifar.image_shape)
        torch.manual_seed(0)
        model = build_model("preact-resnet18-w8", 3, 10, 32)
        data = Attack(trig, 0, 0.1).poison(cifar.train, 0)[0]
        out[name] = trig, train(model, data, epochs=1, lr=0.02, batch_size=16, optimizer="sgd", device="cpu",
                                progress=False)
    return out


def _snapshot(model: nn.Module) -> dict[str, torch.Tensor]:
    return {k: v.detach().clone() for k, v in model.state_dict().items()}


def _bn_keys(model: nn.Module) -> dict[str, list[str]]:
    """State-dict keys of the BatchNorm layers: running statistics and affine parameters."""
    stats, affine = [], []
    for name, m in model.named_modules():
        if isinstance(m, nn.modules.batchnorm._BatchNorm):
            stats += [f"{name}.running_mean", f"{name}.running_var"]
            affine += [f"{name}.weight", f"{name}.bias"]
    return {"stats": stats, "affine": affine}


def _changed(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor], keys: list[str]) -> list[str]:
    return [k for k in keys if not torch.equal(a[k], b[k])]


def check_defense(defense: str, model: nn.Module, data, trigger, target: int | None = None) -> dict:
    before = _snapshot(model)
    d = get_defense(defense, device="cpu", seed=0, progress=False, **smoke_params(defense))
    unseen = data.defender.take(UNSEEN, 0)
    out = d(model, unseen, trigger=trigger if d.needs_trigger else None, target=target, num_classes=10)
    after_input = _snapshot(model)
    assert all(torch.equal(before[k], after_input[k]) for k in before), f"{defense} modified the input model"
    assert model.training is False
    defended = out.model
    assert not any(m.training for m in defended.modules()), f"{defense} returned a model in train mode"
    metrics = evaluate(defended, data.test, trigger, 0)
    assert all(math.isfinite(v) and 0 <= v <= 1 for v in metrics.values()), metrics
    new = _snapshot(defended)
    assert all(torch.isfinite(v.float()).all() for v in new.values()), f"{defense}: non-finite weights"
    bn = _bn_keys(model)
    assert bn["stats"], "the model under test has BatchNorm layers"
    inner = defense.removesuffix("+repair")  # a +repair variant changes what its inner defense does, and the
    if inner != defense:  # output layer (a closed-form edit: BatchNorm untouched)
        assert out.unlearned is not None and set(out.info["repair_layers"]) <= set(dict(model.named_modules()))
    if inner in ("none", *EDITS):
        changed = _changed(before, new, list(before))
        assert changed or defense == "none", f"{defense} changed nothing"
        layers = out.info.get("layers", []) + out.info.get("repair_layers", [])
        assert all(any(k.startswith(f"{n}.") for n in layers) for k in changed), (defense, changed, layers)
        assert not _changed(before, new, bn["stats"] + bn["affine"])  # BN untouched by the edit
    elif inner == "baerase":
        assert not _changed(before, new, bn["stats"])  # eval-mode unlearning: running statistics frozen
    else:  # fine-tuning in train mode re-estimates the running statistics on the defender samples
        assert _changed(before, new, bn["stats"]), f"{defense}: BN statistics were not re-estimated"
    return metrics


def given_target(defense: str) -> int | None:
    """The target handed to a defense that recovers one: the generators' target search (one per class and kind)
    costs minutes on this model on a loaded CPU, so here it is given; the search itself runs on the small model
    below and in the smoke chapters 2-3 and 5."""
    return 0 if DEFENSES.get(defense).recovers_trigger else None


@pytest.mark.parametrize("attack", ATTACKS.names())
@pytest.mark.parametrize("defense", [d for d in DEFENSES.names() if d not in REPAIRED])
def test_every_defense_on_preact_resnet18_3x32x32(cifar, attacked, attack, defense):
    trigger, model = attacked[attack]
    assert cifar.image_shape == (3, 32, 32)
    check_defense(defense, model, cifar, trigger, target=given_target(defense))


@pytest.mark.parametrize("defense", REPAIRED)
def test_every_repair_variant_on_preact_resnet18_3x32x32(cifar, attacked, defense):
    """The +repair variants on one attack: their inner defenses run on every attack above."""
    trigger, model = attacked["badnets"]
    check_defense(defense, model, cifar, trigger, target=given_target(defense))


class OtherNames(nn.Module):
    """A BatchNorm CNN with none of the attributes the book's models carry (no ``last_conv``/``edit_layer``)."""

    def __init__(self) -> None:
        super().__init__()
        self.stem = nn.Sequential(nn.Conv2d(3, 8, 3, padding=1, bias=False), nn.BatchNorm2d(8), nn.ReLU(),
                                  nn.MaxPool2d(2))
        self.body = nn.Sequential(nn.Conv2d(8, 16, 3, padding=1), nn.BatchNorm2d(16), nn.ReLU(),
                                  nn.AdaptiveAvgPool2d(2), nn.Flatten())
        self.head = nn.Sequential(nn.Linear(64, 32), nn.BatchNorm1d(32), nn.ReLU(), nn.Linear(32, 10))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.body(self.stem(x)))


@pytest.mark.parametrize("defense", [d for d in DEFENSES.names() if d != "none"])
def test_every_defense_on_a_batchnorm_model_with_other_layer_names(cifar, defense):
    trigger = make_trigger("badnets", cifar.image_shape)
    torch.manual_seed(0)
    model = train(OtherNames(), Attack(trigger, 0, 0.1).poison(cifar.train, 0)[0], epochs=1, lr=0.02,
                  batch_size=16, optimizer="sgd", device="cpu", progress=False)
    check_defense(defense, model, cifar, trigger)
