"""``agme-bdk``: activation-guided model editing (Hsieh et al. 2024, arXiv 2407.07662) with backdoor knowledge.

The closed-form edit of :mod:`unlearnlib.ml.edit` on late layers, keys from the defender's unseen samples (each also
shifted by a few pixels, :func:`~unlearnlib.ml.edit.shift_augment`), the trigger given. ``agme``
(:mod:`.agme`) is the same edit with a recovered trigger.
"""

from __future__ import annotations

import time
from typing import Any

import torch
from torch import nn

from ..core.checks import check_choice, check_fraction, check_number, check_positive_int
from ..core.registry import DEFENSES
from ..data import Data
from ..ml.edit import (
    DENSE_SHIFTS,
    default_edit_layer,
    edit_layers,
    hidden_linears,
    shift_augment,
    warm_up_linalg,
)
from ..ml.triggers import TriggerArg, apply_trigger
from ..models import get_layer, last_conv_name
from .base import Defense, DefenseResult

HIDDEN = ("first", "last", "all")  # which hidden Linear(s) ``layers=None`` edits


def pick_shifts(n: int, shifts: tuple[tuple[int, int], ...], k: int, seed: int) -> torch.Tensor:
    """Rows of ``shift_augment(x, shifts)`` (blocks of ``n`` rows, one block per shift) that give each of the
    ``n`` samples ``k`` of the shifts: the identity, where ``shifts`` has it, and ``k - 1`` others drawn at random
    for each sample (seeded), so that together the samples cover every shift."""
    ident = shifts.index((0, 0)) if (0, 0) in shifts else None
    others = torch.tensor([i for i in range(len(shifts)) if i != ident])
    g = torch.Generator().manual_seed(seed)
    draws = k - 1 if ident is not None else k
    rows = [ident * n + i for i in range(n)] if ident is not None else []
    for i in range(n):
        rows += [int(s) * n + i for s in others[torch.randperm(len(others), generator=g)[:draws]]]
    return torch.tensor(sorted(rows))


@DEFENSES.register("agme-bdk")
class AgmeBDK(Defense):
    """AGME with backdoor knowledge: the (ridge) edit with the given trigger T on ``unseen`` clean samples.

    The closed-form edit of :func:`~unlearnlib.ml.edit.edit_layers` (Hsieh et al. 2024; the formulation is *[ours]*):
    the keys of triggered samples go to their clean values, clean keys are preserved (``lam``) and the weights
    pulled to the original ones (``mu``). Defaults *[ours]*:

    - ``layers=None`` edits the hidden Linear layers one after the other (``hidden="all"``,
      :func:`~unlearnlib.ml.edit.hidden_linears`); a model with one hidden Linear, or one that names its
      ``edit_layer``, gets that layer alone, and one without, its output layer
      (:func:`~unlearnlib.ml.edit.default_edit_layer`). ``hidden="first"`` or ``"last"`` edits one of them.
    - 50 unseen samples (``default_unseen``), each also shifted by every offset of up to two pixels (``augment``,
      :data:`~unlearnlib.ml.edit.DENSE_SHIFTS`: 25 keys per sample). ``key_shifts=k`` keeps k of them per sample
      (:func:`pick_shifts`): k times fewer forward passes on a large network, at a cost in success measured in
      docs/decisions/0017-edit-key-budget.md.
    - ``layers="auto"`` runs the cascade from the last conv layer instead (:meth:`edit`, ``cascade_agreement``).

    It fails weak backdoors that never planted (some triggered images still reach the target after the edit) and
    can cost the target class of a network whose only Linear is its output layer.

    Example::

        result = AgmeBDK()(model, unseen, trigger=trigger, num_classes=10)  # result.model: the edited copy

    Why these defaults: docs/decisions/0005-agme-bdk-defaults.md.
    """

    name = "agme-bdk"
    default_unseen = 50
    repairable = True
    colour = "blue"
    needs_trigger = True
    shifts: tuple[tuple[int, int], ...] = DENSE_SHIFTS
    hidden = "all"  # which hidden Linear(s) ``layers=None`` edits (:meth:`layers_of`)

    def __init__(self, layers: str | list[str] | None = None, lam: float = 1.0, mu: float = 1.0,
                 augment: bool = True, cascade_agreement: float = 0.9, hidden: str | None = None,
                 key_shifts: int = 0, **kw: Any) -> None:
        super().__init__(**kw)
        self.key_shifts = check_positive_int(key_shifts, "key_shifts", minimum=0)  # 0: every one of ``shifts``
        self.cascade_agreement = check_fraction(cascade_agreement, "cascade_agreement", low_open=False)
        self.lam, self.mu = check_number(lam, "lam"), check_number(mu, "mu")
        if hidden is not None:  # None: the defense's own default (:attr:`hidden`)
            self.hidden = check_choice(hidden, HIDDEN, "hidden", f"which hidden Linear layers=None edits; None: "
                                       f"{type(self).hidden!r}")
        if not isinstance(augment, bool):
            raise ValueError(f"augment must be True or False (shifted copies of the unseen samples as keys), "
                             f"got {augment!r}")
        self.layers, self.augment = layers, augment
        warm_up_linalg()

    def hyperparameters(self) -> dict[str, Any]:
        return {"layers": self.layers, "lam": self.lam, "mu": self.mu, "augment": self.augment,
                "hidden": self.hidden, "key_shifts": self.key_shifts}

    def layers_of(self, model: nn.Module) -> str | list[str]:
        """The layers this defense edits in ``model``: ``layers``, or with ``layers=None`` the hidden Linear(s)
        :attr:`hidden` names: ``"first"`` / ``"last"`` (:func:`default_edit_layer`) or ``"all"``, every hidden
        Linear in turn (:func:`hidden_linears`; a model with fewer than two gets ``"first"``'s layer). ``"auto"``,
        the cascade, is resolved by :meth:`edit`."""
        if self.layers is not None:
            return self.layers
        if self.hidden == "all":
            names = hidden_linears(model)
            return names if len(names) >= 2 else default_edit_layer(model, "first")
        return default_edit_layer(model, self.hidden)

    def key_inputs(self, x: torch.Tensor) -> torch.Tensor:
        """The inputs whose keys the edit reads: ``x`` and, with ``augment``, its copies under :attr:`shifts`
        (``key_shifts`` of them per sample where it is not 0)."""
        if not self.augment:
            return x
        k = self.key_shifts or len(self.shifts)
        aug = shift_augment(x, self.shifts)
        return aug if k >= len(self.shifts) else aug[pick_shifts(len(x), self.shifts, k, self.seed).to(aug.device)]

    def edit(self, model: nn.Module, x: torch.Tensor, trigger: TriggerArg, **kw: Any) -> dict[str, Any]:
        """Edit ``layers`` (default: :func:`default_edit_layer`), keys from the unseen samples and their shifted
        copies (``augment``).

        ``layers="auto"`` *[ours]* (the default before the robustness grid): a cascade -- edit the last conv layer
        (``model.last_conv``; its unfolded patches already give many keys, so no shift augmentation there), and go
        on to ``default_edit_layer`` only while fewer than ``cascade_agreement`` of the unseen samples keep their
        clean prediction when triggered (a check on the defender's own samples).

        *[ours]* A model that names no ``last_conv`` starts from its last ``nn.Conv2d``
        (:func:`~unlearnlib.models.last_conv_name`: the same layer the registry names for its own models, so a
        user's CNN gets the same cascade); a model without any conv layer (an MLP) edits ``default_edit_layer``
        alone."""
        if self.layers != "auto":
            return edit_layers(model, self.key_inputs(x), trigger, layers=self.layers_of(model), lam=self.lam,
                               mu=self.mu, **kw)
        one = default_edit_layer(model, "first" if self.hidden == "all" else self.hidden)
        cands = [n for n in (last_conv_name(model), one) if isinstance(n, str)]
        out: dict[str, Any] = {"layers": [], "edit_seconds": 0.0, "dims": [], "keys": [], "solve_forms": [],
                               "solve_seconds": 0.0, "agreement": []}
        trig_x = apply_trigger(trigger, x)
        for name in dict.fromkeys(cands):
            conv = isinstance(get_layer(model, name, "layers"), nn.Conv2d)  # a conv's patches are keys enough
            keys_x = x if conv else self.key_inputs(x)
            o = edit_layers(model, keys_x, trigger, layers=name, lam=self.lam, mu=self.mu, **kw)
            start = time.perf_counter()
            with torch.no_grad():
                pred = model(torch.cat([trig_x, x])).argmax(1)
                agree = float((pred[:len(x)] == pred[len(x):]).float().mean())
            for k in ("layers", "dims", "keys", "solve_forms"):
                out[k] += o[k]
            out["solve_seconds"] += o["solve_seconds"]
            out["agreement"].append(agree)
            out["edit_seconds"] += o["edit_seconds"] + time.perf_counter() - start
            if agree >= self.cascade_agreement - 1e-6:
                break
        return out

    def run(self, model: nn.Module, defender: Data, *, trigger: Any, target: int | None,
            num_classes: int) -> DefenseResult:
        out = self.edit(model, defender.x, trigger)
        info = {**self.hyperparameters(), **out, "recovery_seconds": 0.0, "repair_seconds": 0.0}
        return DefenseResult(model, info)

