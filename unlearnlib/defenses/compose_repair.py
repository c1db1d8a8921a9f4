"""Repair as a step of its own: give the target class back after ANY unlearning defense, from the unseen samples.

A recovered trigger T̂ carries target-class features, so unlearning it also pushes clean images of the target class
t away from t. Mechanism *[ours]*: a closed-form edit of the unlearned model f1 toward the original model f0's
outputs on the defender's unseen samples D (each also shifted by a few pixels, ``augment``; D_t of class t, D_n the
others). On the output layer only the target's row changes, its bias folded in (``w = [w | b]``, ``k = [k; 1]``):

    min_w'  a sum_{x in D_t} (w' k(x) - v0(x))^2  +  sum_{x in D_n} (w' k(x) - v0(x))^2
              + h sum_{x in D_n, r} (w' k(T̂_r(x)) - min(v0(x), w1 k(T̂_r(x))))^2  +  mu ||w' - w1||^2        (repair)

with w1 the target's row in f1, k(x) the layer's input and v0(x) f0's target logit, solved by
:func:`~unlearnlib.ml.edit.ridge_solve`. A triggered image is held no higher than unlearning left it *[ours]*
(``hold="lower"``; ``"cleaned"``: at v0 alone). ``T̂_r`` are ``draws`` applications of each trigger held: the one the
unlearning used and every other recovered kind that fires (``repair_hold_kinds="firing"`` *[ours]*). A hidden layer
named in ``layers`` is solved whole, toward f0's outputs there, its triggered keys at their cleaned values.

Defaults *[ours]*: the output layer, a = ``keep_weight`` = 100, h = ``hold_weight`` = 1, ``mu`` = 1, ``draws`` = 4.
No label beyond the defender's own, no training data, no true trigger unless the inner defense is given it (then
the target is the class it sends the unseen samples to in f0). ``<defense>+repair`` (:func:`compose_repair`) exists
for every ``repairable`` defense (``baerase``, ``nc-unlearn``, ``agme``, ``agme-bdk``); its info adds
``defender_target_acc`` before / after unlearning / after repair (in-sample, on D_t).

Why these defaults: docs/decisions/0009-repair-step.md.
"""

from __future__ import annotations

import copy
import time
from collections.abc import Sequence
from typing import Any

import torch
from torch import nn

from ..core.checks import check_choice, check_class, check_number, check_positive_int
from ..core.registry import DEFENSES
from ..data import Data
from ..ml.edit import infer_target, layer_keys, resolve_layers, ridge_solve, shift_augment, weight_matrix
from ..ml.triggers import TriggerArg, apply_trigger
from ..models import get_layer
from .base import DefenseResult
from .compose import Composed, compose

HOLD_KINDS = ("used", "firing")  # the triggers held: the one unlearning used, or every recovered kind that fires
HOLDS = ("lower", "cleaned")  # the triggered keys' target value: the lower of cleaned / unlearned, or cleaned alone


def check_hold(hold: str, name: str = "hold") -> str:
    """``hold`` checked against :data:`HOLDS` (the error names the parameter ``name``)."""
    return check_choice(hold, HOLDS, name, "the triggered images' target score: the lower of its cleaned and "
                         "unlearned values, or the cleaned value alone")


def _heads(model: nn.Module, num_classes: int) -> list[str]:
    """The Linear layers with ``num_classes`` outputs, in registration order (the last is the output layer)."""
    return [n for n, m in model.named_modules() if isinstance(m, nn.Linear) and m.out_features == num_classes]


def output_layer(model: nn.Module, num_classes: int, layer: str | None = None) -> str:
    """The layer the repair edits: ``layer`` if given, else the last Linear whose output size is ``num_classes``."""
    if layer is not None:
        m = get_layer(model, layer, "layer")
        if not isinstance(m, nn.Linear):
            raise ValueError(f"layer={layer!r} is a {type(m).__name__}; the repair edits a Linear (output) layer")
        return layer
    heads = _heads(model, num_classes)
    if not heads:
        raise ValueError(f"layer: {type(model).__name__} has no Linear layer with {num_classes} outputs to repair; "
                         "name its output layer with layer=...")
    return heads[-1]


@torch.no_grad()
def triggered_target_rate(model: nn.Module, x: torch.Tensor, trigger: TriggerArg, target: int) -> float:
    """Fraction of ``T(x)`` classified as ``target`` (the defender-side proxy asr of a trigger)."""
    if len(x) == 0:
        return 0.0
    return float((model(apply_trigger(trigger, x)).argmax(1) == target).float().mean())


@torch.no_grad()
def class_accuracy(model: nn.Module, x: torch.Tensor, c: int) -> float:
    """Fraction of ``x`` classified as ``c``."""
    return float((model(x).argmax(1) == c).float().mean()) if len(x) else float("nan")


def _bias(layer: nn.Module) -> torch.Tensor:
    b = layer.bias
    return b.detach().float() if b is not None else layer.weight.new_zeros(layer.weight.shape[0]).float()


def _ones(keys: torch.Tensor) -> torch.Tensor:
    """Keys with a constant 1 appended: ``[W, b] [k; 1] = W k + b``."""
    return torch.cat([keys, keys.new_ones(len(keys), 1)], 1)


def repair_layers(model: nn.Module, num_classes: int, layers: str | list[str] | None = None) -> list[str]:
    """The layers the repair edits, in forward order: ``layers`` if given, else the output layer
    (:func:`output_layer`)."""
    if layers is None:
        names = [output_layer(model, num_classes)]
    else:
        names = [layers] if isinstance(layers, str) else list(layers)
    return resolve_layers(model, names, "layers")


def repair(original: nn.Module, unlearned: nn.Module, unseen: Data, trigger: TriggerArg, target: int, *,
           layers: str | list[str] | None = None, keep_weight: float = 100.0, hold_weight: float = 1.0,
           mu: float = 1.0, draws: int = 4, augment: bool = True,
           hold: str = "lower", also_hold: Sequence[TriggerArg] = ()) -> tuple[nn.Module, dict[str, Any]]:
    """The (repair) edit of ``unlearned``, IN PLACE (callers pass a copy), layer after layer in forward order, each
    with the keys of the model repaired so far; returns it and an info dict. On the output layer only the
    ``target``'s row (and bias) changes; a hidden layer named in ``layers`` is solved whole.

    ``keep_weight`` is a, ``hold_weight`` h, ``mu`` the pull to the unlearned weights; ``hold="lower"`` holds the
    triggered keys' target logit at min(cleaned, unlearned), ``"cleaned"`` at the cleaned value alone (the first
    version, for comparison); ``also_hold``: more triggers whose keys are held the same way (each with ``draws``
    applications); ``original`` is f0 (not modified; same architecture). Raises if ``unseen`` has no sample of
    ``target``."""
    for name, v in (("keep_weight", keep_weight), ("hold_weight", hold_weight), ("mu", mu)):
        check_number(v, name)
    if not keep_weight > 0:
        raise ValueError(f"keep_weight must be > 0 (the weight of the target-class keys), got {keep_weight!r}")
    check_positive_int(draws, "draws")
    check_hold(hold)
    with torch.no_grad():
        num_classes = int(original(unseen.x[:1]).shape[1])
    check_class(target, num_classes, "target")
    is_t = unseen.y == target
    if not bool(is_t.any()):
        raise ValueError(f"unseen must contain samples of the target class {target} for the repair step")
    start = time.perf_counter()
    names = repair_layers(unlearned, num_classes, layers)
    aug = shift_augment if augment else (lambda x: x)
    xt, xn = aug(unseen.x[is_t]), aug(unseen.x[~is_t])
    holds = [trigger, *also_hold]
    xtrig = torch.cat([apply_trigger(t, xn) for t in holds for _ in range(draws)]) if len(xn) else xn
    a, solve_seconds, n_keep = float(keep_weight), 0.0, 0
    heads = _heads(unlearned, num_classes)
    for name in names:
        head, head0 = get_layer(unlearned, name), get_layer(original, name)
        # [ours] on the output layer the target's row alone: the other classes keep what unlearning left them
        is_head = bool(heads) and name == heads[-1]
        rows = slice(target, target + 1) if is_head else slice(None)
        # [ours] the bias is solved with the weight (keys get a constant 1): unlearning shifts biases too
        w1 = torch.cat([weight_matrix(head), _bias(head)[:, None]], 1)[rows]
        w0 = torch.cat([weight_matrix(head0).float(), _bias(head0)[:, None]], 1)[rows]
        sa, sh = a ** 0.5, float(hold_weight) ** 0.5  # rows scaled by sqrt(weight): weight * ||W' k - v||^2
        v0t = _ones(layer_keys(original, head0, xt)) @ w0.T  # f0's outputs on the clean images
        v0n = _ones(layer_keys(original, head0, xn)) @ w0.T
        keys = [sa * _ones(layer_keys(unlearned, head, xt)), _ones(layer_keys(unlearned, head, xn))]
        vals = [sa * v0t, v0n]
        if len(xtrig):  # triggered keys -> the clean image's output: the cleaned value (no backdoor)
            kg = _ones(layer_keys(unlearned, head, xtrig))
            vg = v0n.repeat(draws * len(holds), 1)
            if is_head and hold == "lower":  # [ours] no higher than unlearning left it: not the backdoor again
                vg = torch.minimum(vg, kg @ w1.T)
            keys.append(sh * kg)
            vals.append(sh * vg)
        kc, vc = torch.cat(keys), torch.cat(vals)
        t0 = time.perf_counter()
        new_w = ridge_solve(w1, kc, vc, kc[:0], 1.0, float(mu))
        solve_seconds += time.perf_counter() - t0
        with torch.no_grad():
            head.weight[rows] = new_w[:, :-1].reshape(head.weight[rows].shape).to(head.weight.dtype)
            if head.bias is not None:
                head.bias[rows] = new_w[:, -1].to(head.bias.dtype)
        n_keep += len(kc)
    return unlearned.eval(), {"repair_layers": names, "repair_keys": int(len(xt)), "keys": n_keep,
                              "repair_rows": f"target {target} of {heads[-1]}" if heads and heads[-1] in names
                              else "all",
                              "keep_weight": a, "hold_weight": float(hold_weight), "repair_mu": float(mu),
                              "repair_draws": draws, "repair_hold": hold, "repair_augment": augment,
                              "repair_held_triggers": len(holds),
                              "repair_solve_seconds": solve_seconds,
                              "repair_seconds": time.perf_counter() - start}


class Repaired(Composed):
    """An unlearning defense followed by :func:`repair` (subclassed once per inner defense by
    :func:`compose_repair`). Repair parameters: ``keep_weight``, ``hold_weight``, ``repair_mu``, ``draws``,
    ``augment_repair``, ``repair_layers``, ``repair_hold`` (:func:`repair`'s ``hold``), ``repair_hold_kinds``
    (``"firing"``: hold the trigger the unlearning used and every other recovered kind that reaches the target,
    :attr:`DefenseResult.also_fires`, *[ours]*; ``"used"``: that trigger alone); every other argument goes to the
    inner defense."""

    suffix = "+repair"
    step = "the repair of the target class (:func:`repair`)"

    def __init__(self, keep_weight: float = 100.0, hold_weight: float = 1.0, repair_mu: float = 1.0,
                 draws: int = 4, augment_repair: bool = True, repair_layers: str | list[str] | None = None,
                 repair_hold: str = "lower", repair_hold_kinds: str = "firing",
                 **kw: Any) -> None:
        for name, v in (("keep_weight", keep_weight), ("hold_weight", hold_weight), ("repair_mu", repair_mu)):
            check_number(v, name)
        if not keep_weight > 0:
            raise ValueError(f"keep_weight must be > 0 (the weight of the target-class keys), got {keep_weight!r}")
        if not isinstance(augment_repair, bool):
            raise ValueError(f"augment_repair must be True or False, got {augment_repair!r}")
        if repair_layers is not None and not (isinstance(repair_layers, str) or (
                isinstance(repair_layers, (list, tuple)) and repair_layers
                and all(isinstance(n, str) for n in repair_layers))):
            raise ValueError(f"repair_layers must be None (the output layer), a layer name "
                             f"or a non-empty list of names, got {repair_layers!r}")
        self.hold_kinds = check_choice(repair_hold_kinds, HOLD_KINDS, "repair_hold_kinds", "hold the trigger the "
                                        "unlearning used, or every recovered kind that reaches the target too")
        super().__init__(**kw)
        self.repair_kwargs = {"keep_weight": float(keep_weight), "hold_weight": float(hold_weight),
                              "mu": float(repair_mu), "draws": check_positive_int(draws, "draws"),
                              "augment": augment_repair, "hold": check_hold(repair_hold, "repair_hold"),
                              "layers": None if repair_layers is None else
                              [repair_layers] if isinstance(repair_layers, str) else list(repair_layers)}

    def run(self, model: nn.Module, defender: Data, *, trigger: Any, target: int | None,
            num_classes: int) -> DefenseResult:
        """The inner defense on ``model`` (left untouched: it is f0), then the repair of a copy of its output."""
        out = self.inner_defense(model, defender, trigger=trigger, target=target, num_classes=num_classes)
        used_trigger = out.trigger if out.trigger is not None else trigger
        if used_trigger is None:
            raise ValueError(f"{self.inner} returned no trigger to hold during the repair")
        tgt = out.target if out.target is not None else target
        inferred = tgt is None
        if inferred:  # backdoor knowledge without the target: the class the known trigger sends images to
            tgt = infer_target(model, defender.x, used_trigger)
        also = list(out.also_fires) if self.hold_kinds == "firing" else []
        repaired, rinfo = repair(model, copy.deepcopy(out.model), defender, used_trigger, int(tgt), also_hold=also,
                                 **self.repair_kwargs)
        x_t, x_n = defender.x[defender.y == tgt], defender.x[defender.y != tgt]
        stages = {"before": model, "unlearned": out.model, "repaired": repaired}
        info = {**out.info, **rinfo, "inner_defense": self.inner, "repair_target": int(tgt),
                "repair_target_inferred": inferred,
                "defender_target_acc": {k: class_accuracy(m, x_t, int(tgt)) for k, m in stages.items()},
                "defender_trigger_rate": {k: triggered_target_rate(m, x_n, used_trigger, int(tgt))
                                          for k, m in stages.items()}}
        return DefenseResult(repaired, info, out.trigger, out.target, unlearned=out.model, detected=out.detected)


def compose_repair(name: str) -> type[Repaired]:
    """The class of ``<name>+repair``: the registered unlearning defense ``name``, then :func:`repair`
    (:func:`~.compose.compose`). Only an unlearning defense composes (``repairable``): the repair needs the trigger
    to hold and the class to give back."""
    return compose(Repaired, name)  # type: ignore[return-value]


def repairable() -> tuple[str, ...]:
    """The registered defenses the repair step can follow (``repairable``), in registry order."""
    return tuple(n for n in DEFENSES.names() if getattr(DEFENSES.get(n), "repairable", False))
