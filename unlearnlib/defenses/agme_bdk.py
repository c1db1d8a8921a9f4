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

from ..core.checks import check_choice, check_fraction, check_number
from ..core.registry import DEFENSES
from ..data import Data
from ..ml.edit import (
    DENSE_SHIFTS,
    default_edit_layer,
    edit_layers,
    hidden_linears,
    infer_target,
    shift_augment,
    warm_up_linalg,
)
from ..ml.triggers import TriggerArg, apply_trigger
from ..models import get_layer, last_conv_name
from .base import Defense, DefenseResult

HIDDEN = ("first", "last", "all")  # which hidden Linear(s) ``layers=None`` edits


@DEFENSES.register("agme-bdk")
class AgmeBDK(Defense):
    """AGME with backdoor knowledge: the (ridge) edit with the given trigger T on ``unseen`` clean samples.

    Defaults *[ours]*, chosen on the robustness grid (grid seed 0, 60 cells) and judged on grid seed 1 (chapter 8):
    ``layers=None`` edits the hidden Linear layers, one after the other (``hidden="all"``,
    :func:`~unlearnlib.ml.edit.hidden_linears`; a model with one hidden Linear, or one that names its ``edit_layer``,
    gets that layer alone, and one without, its output layer: :func:`~unlearnlib.ml.edit.default_edit_layer`), from
    50 unseen samples, each
    also shifted by every offset of up to two pixels (:data:`~unlearnlib.ml.edit.DENSE_SHIFTS`, 25 keys per sample).
    The earlier defaults, in order. The ``"auto"`` cascade from the last conv layer with 10 samples and nine shifts
    succeeded in 38% of grid seed 1's 60 cells, one hidden Linear in 65% (the last) and 71.7% (the first): the conv
    edit cost the target class most often, and 10 samples were too few to keep clean accuracy. The first hidden
    Linear against the last on grid seed 0: 83.3% against 78.3% (LeNet-5 7 against 4 of 10 cells); with the repair
    step after it on grid seed 1: 75.0% against 71.7%. The dense shifts: 78% against 73% with nine on grid seed 0,
    65% against 67% on grid seed 1 (one cell), and they keep Blended's accuracy drop on the tuning setting within
    its 0.5-point bound (nine shifts: 0.8). ``layers="auto"`` still runs the cascade (:meth:`edit`).
    Every hidden Linear instead of the first alone (``hidden="first"``; it changes LeNet-5 and the MLP, whose two
    hidden Linears are edited in turn; the CNN names ``fc1`` and the BatchNorm network has none): chosen on grid
    seed 0 and judged on grid seed 1 (``bench --grid robustness --cells 60 --grid-seed S --defenses agme-bdk
    agme-bdk+repair [--defense-param agme-bdk:hidden=first ...]``, the same models, one Intel machine), cells of 60
    by :func:`~unlearnlib.evaluation.rule.success` and its bounds:

    ====================================  ===================  ===================
    first -> all                          grid seed 0          grid seed 1
    ====================================  ===================  ===================
    ``agme-bdk`` success                  50 -> 51             45 -> 46
    asr <= 2%                             54 -> 55             50 -> 51
    target drop <= 3 points               56 -> 56             55 -> 55
    acc drop <= 1.5 points                58 -> 58             60 -> 59
    ``agme-bdk+repair`` success           49 -> 50             47 -> 48
    target drop <= 3 after the repair     56 -> 55             58 -> 58
    ====================================  ===================  ===================

    The second edit takes out part of what the first leaves of a weak backdoor: the asr of the MLP's WaNet cells
    that never planted fell by about a third (g1c008 7.0 -> 3.8%, g1c019 6.3 -> 3.7%), not under the bound; the
    median accuracy drop stays at 0.1-0.2 points.
    A sweep on grid seed 0 before it gained nothing: the small BatchNorm network's last conv layer instead of its
    output layer succeeded on 17 of its 27 cells against 23; ``lam`` from 1 to 5 with ``mu`` 1 or 3 moved it by one
    cell at most, with the repair after it too (49 -> 49-51), ``lam=0.3`` lost six BatchNorm cells (44) and
    ``mu=0.1`` left the CNN's system singular on three (47); four or eight draws of a random-position patch per key
    image instead of one moved the asr of the grid's three such cells by two points at most (the MLP's 22 -> 20%),
    no cell changing its verdict. ``target_weight`` (the unseen samples of the target class held that many times
    over) at 3: grid seed 0 50 -> 51 (``+repair`` 49 -> 51), grid seed 1 45 -> 44 (``+repair`` 47 -> 48); not
    adopted. The output layer edited too, after the hidden Linears (LeNet-5 and the MLP): grid seed 0 51 -> 51, the
    MLP's random-position cell 17.9 -> 14.4% asr, LeNet-5's WaNet and Blended cells within 0.3 points of before;
    not adopted. What it fails are weak backdoors that never planted (some of the triggered images still reach the
    target after the edit) and the BatchNorm network's target class, whose output layer is the only Linear to edit.
    Not the clean model's own rate (``asr_floor``: the cell's model trained without poison, same trigger): of the
    nine cells of grid seed 1 where ``agme-bdk`` leaves over 2%, one has a clean model over 2% (g1c051, 2.3%; the edit
    left 13%), and of the seven cells whose clean model is over 2% (up to 9.3%), the edit brought six under 2%. Eight
    of the nine are the MLP's or LeNet-5's WaNet and random-position checkerboard cells, none of them planted (the
    ninth: the BatchNorm network's random-position patch, g1c044, 3.2%). Measured again at this code: 46 and 48 of 60.
    Two more tries on grid seed 0 (51 of 60 with these defaults, asr <= 2% on 55), neither adopted: four copies of
    each unseen sample with Gaussian noise (sigma 0.1) as extra keys, 46 (asr <= 2% on 51: the noisy keys outweigh
    the triggered ones); on the BatchNorm network, the output layer's edit kept to the target's row alone, 32 (asr
    <= 2% on 32: the other rows do most of the removal) while the target class still lost 4-6 points on the cells
    where it lost 4-8 (g0c012, g0c053, g0c057): that loss comes from the target's own row, which must lower the
    target's score along the trigger's direction in a 64-feature space the target's clean images share.
    Not a lack of samples: with BAERASE's 175 unseen samples (``bench --unseen 175``) grid seed 0 rose to 56 of 60
    (100 samples: 50), and grid seed 1 stayed at 46, thirteen of its fourteen failed cells the same. Nor does a
    second pass help: editing the edited model again lowered the MLP's random-position checkerboard (g0c004)
    from 17.9 to 12.8% asr at 0.9 points of accuracy, and on the cells near the bounds traded asr for accuracy or
    the target class (g0c044: 2.6 -> 2.3% asr, the target class 93 -> 89%).
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
                 target_weight: float = 1.0, **kw: Any) -> None:
        super().__init__(**kw)
        self.cascade_agreement = check_fraction(cascade_agreement, "cascade_agreement", low_open=False)
        self.lam, self.mu = check_number(lam, "lam"), check_number(mu, "mu")
        if hidden is not None:  # None: the defense's own default (:attr:`hidden`)
            self.hidden = check_choice(hidden, HIDDEN, "hidden", f"which hidden Linear layers=None edits; None: "
                                       f"{type(self).hidden!r}")
        self.target_weight = check_number(target_weight, "target_weight", minimum=1.0)
        if not isinstance(augment, bool):
            raise ValueError(f"augment must be True or False (shifted copies of the unseen samples as keys), "
                             f"got {augment!r}")
        self.layers, self.augment = layers, augment
        warm_up_linalg()

    def hyperparameters(self) -> dict[str, Any]:
        return {"layers": self.layers, "lam": self.lam, "mu": self.mu, "augment": self.augment,
                "hidden": self.hidden, "target_weight": self.target_weight}

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

    def target_keep(self, model: nn.Module, defender: Data, trigger: TriggerArg, target: int | None) -> dict[str, Any]:
        """*[ours]* Extra preservation keys for the target class: the unseen samples of class ``target`` (and their
        shifted copies), weighted ``target_weight - 1`` on top of the weight 1 every clean key has; none when the
        weight is 1. An unknown target is the class ``trigger`` sends most unseen samples to
        (:func:`~unlearnlib.ml.edit.infer_target`)."""
        if self.target_weight == 1.0:
            return {}
        if target is None:
            target = infer_target(model, defender.x, trigger)
        xt = defender.x[defender.y.to(defender.x.device) == target]
        return {"keep_x": self.key_inputs(xt), "keep_weight": self.target_weight - 1.0} if len(xt) else {}

    def key_inputs(self, x: torch.Tensor) -> torch.Tensor:
        """The inputs whose keys the edit reads: ``x`` and, with ``augment``, its copies under :attr:`shifts`."""
        return shift_augment(x, self.shifts) if self.augment else x

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
        out = self.edit(model, defender.x, trigger, **self.target_keep(model, defender, trigger, target))
        info = {**self.hyperparameters(), **out, "recovery_seconds": 0.0, "repair_seconds": 0.0}
        return DefenseResult(model, info)

