"""Repair as a step of its own: give the target class back after ANY unlearning defense, from the unseen samples.

Why: an unlearning defense removes the behaviour of a trigger T̂ it recovered (or was given). A recovered trigger
carries target-class features, so unlearning it also pushes clean images of the target class t away from t: their
target_acc drops while the other classes keep theirs. Repair restores what unlearning took, and only that.

Mechanism *[ours]*: closed-form edits of the unlearned model, toward the ORIGINAL model's outputs on the defender's
unseen samples, with the triggered keys held no higher than their cleaned values. Let f0 be the model before
unlearning, f1 the model after it, D the unseen samples (each also shifted by a few pixels, ``augment``), D_t those
of class t and D_n the others. The repaired layer is the output layer by default (``layers`` may list more, e.g. the
late edit layer first: they are then edited one after the other in forward order, each with the keys of the model
repaired so far). On the output layer only the target's row changes: with w1 (its row in f1, bias folded in), k(x)
the layer's input there, and v0(x) f0's target logit on x,

    min_w'  a sum_{x in D_t} (w' k(x) - v0(x))^2                          (give t back: f0's target logit)
              + sum_{x in D_n} (w' k(x) - v0(x))^2                          (the other clean images: f0's too)
              + h sum_{x in D_n, r} (w' k(T̂_r(x)) - min(v0(x), w1 k(T̂_r(x))))^2       (triggered keys held down)
              + mu ||w' - w1||^2                                                                       (repair)

and every other row keeps f1's weights. A hidden layer in ``layers`` has no class rows: all its rows are solved
the same way, toward f0's outputs W0 k0(x) at that layer. Both are solved by
:func:`~unlearnlib.ml.edit.ridge_solve` (its (residual) form, rows scaled by the square roots of the
weights). Clean images carry no trigger, so f0's outputs on them are clean behaviour; a triggered image is sent to
f0's output on the same image without the trigger -- its cleaned value, the AGME edit's own target -- or, where
unlearning left its target logit lower than that, to the unlearned value *[ours]*: the repair may give the target
class back, but it never aims a triggered image's target score above what unlearning left it (a least-squares
target, not a hard bound: the tests and the grid measure what it gives). ``T̂_r`` are ``draws``
applications of each trigger held: the one the unlearning used and, by default, every other recovered kind that
reaches the target (below; a recovered trigger *distribution* draws fresh patches each time).
A hidden layer in ``layers`` has no target logit: its triggered keys go to the cleaned values.

Why the lower of the two *[ours]*: T̂ is the recovered trigger, not the attacker's. Where unlearning took the
backdoor out by lowering the target score (BAERASE fine-tunes every layer), the attacker's trigger still moves the
features the same way, and pulling the target row back to f0's clean behaviour, with T̂'s images only as high as a
clean image, gave part of the backdoor back: after ``baerase`` on grid seed 0, 12 of the 26 cells that unlearning
had left at asr <= 2% went over 2% after the repair (WaNet up to 25%), and on grid seed 1 the repair raised the asr
by 10 points or more in 16 of the 60 cells (0.4% -> 23.6% on g1c023). Held at the lower value, T̂'s images keep the
low target score unlearning gave them, and the row can only lift what sets the target class apart. Chosen on grid
seed 0 (``baerase``, the same unlearned models for every variant, all 60 cells): success 11 -> 19 cells, asr <= 2%
15 -> 25, target drop <= 3 in 56 -> 54, the cells pushed over 2% by the repair 12 -> 4; a heavier hold (h = 10 at
the cleaned value) gave 15, h = 3 / 10 with the lower value 19 / 17, and holding the clean non-target images at the
lower value too 19 (target drop <= 3 in 51). Judged on grid seed 1 through the grid runner (``bench --grid
robustness --cells 60 --grid-seed 1 --defenses baerase+repair nc-unlearn+repair agme+repair agme-bdk+repair``;
before: the same compositions' last runs, judged by the same rule): ``baerase+repair`` succeeds in 31.7 -> 38.3% of
the cells (pushed over 2% by the repair: 15 -> 9 of the 33 that unlearning left at <= 2%; still raised by 10 points
or more: 16 -> 14, most of them WaNet or a backdoor unlearning removed only in part -- T̂ is a patch or a blend and
holds no warp down), ``nc-unlearn+repair`` 20.0 -> 20.0%, ``agme+repair`` 41.7 -> 41.7%, ``agme-bdk+repair`` 78.3 ->
75.0% (two small-bn cells one and two test images of the target class past the bound: where the known trigger was
edited out, its keys are close to clean ones and holding them down also holds back part of the lift); target drop <=
3 after the repair in 59 / 49 / 55 / 57 -> 57 / 47 / 54 / 55 of the 60 cells. On grid seed 0, ``agme-bdk+repair``
succeeds in 50 of 60 cells either way.

Tried after the blind edit and not adopted (grid seed 0, 60 cells, ``agme+repair``, each variant repairing the same
edited models; success / asr <= 2% / target drop <= 3 / asr raised by more than a point, as
:func:`~unlearnlib.evaluation.robustness.repair_stages` counts them): the default 18 / 19 / 55 / 7 cells (the edit
alone: 51 within the target bound; five of the seven raised are BatchNorm cells, whose edit and repair change the same
output layer); the clean images of the other classes held at the lower value too 20 / 22 / 50 / 1 (the repair gives the
class nothing back and becomes a second unlearning); a = 10: 18 / 22 / 53 / 3; h = 10: 16 / 22 / 51 / 3; mu = 10: 18 /
18 / 56 / 7; no repair where the defender's shifted target-class images kept their top-1: 17 / 18 / 54 / 4; dropping any
step of the row back along the unlearning's change to it: the default on every cell (the repair never stepped back along
it).

Tried and not adopted, the (lift) *[ours]* (``repair_lift="needed"``, :func:`needed_lift`; the default ``"full"``
is the repair above): the target's row moves along its change only as far as the defender's shifted target-class
images need to be classified as in f0 (or as with the whole change, where that is fewer). Through the grid runner,
the same models, 60 cells (``--defense-param <defense>+repair:repair_lift=needed``), default -> lift:
``agme-bdk+repair`` grid seed 0 50 -> 53 successes (target drop <= 3 in 55 -> 58; on most cells the step was 0:
the defender's images had lost nothing), held-out grid seed 1 48 -> 46 (58 -> 56); ``baerase+repair`` grid seed
0 20 -> 19 (asr raised by the repair on 13 -> 8 cells, target drop <= 3 in 53 -> 48), grid seed 1 22 -> 19 (13 ->
10; 51 -> 44). Fewer raised cells, paid for with the target class: five images of it (and their shifted copies)
say too little of what the test images lost -- on the held-out cells it gave up (BatchNorm Blended cells, g1c009
and g1c034) it stopped once the defender's images were classified as with the whole repair (steps 0.32 and 0),
and the target class's test images stayed 4 points down, where the whole repair had given them back. The plain
gate (no repair where the defender's five target images kept their accuracy), simulated on the same
``agme-bdk+repair`` records: 50 -> 52 and 48 -> 47.

What the repair gives back and what it raises on the held-out grid seed 1 (60 cells, the defaults,
:func:`~unlearnlib.evaluation.robustness.repair_stages`; ``bench --grid robustness --cells 60 --grid-seed 1 --defenses
<defense>+repair``): cells within the target bound after unlearning -> after the repair, cells whose asr the repair
raised by more than a point, cells it pushed over 2%, the largest rise:

    =====================  ============  ======  ======  ==========================
    composition            target ok     raised  pushed  largest rise (points)
    =====================  ============  ======  ======  ==========================
    ``agme-bdk+repair``    55 -> 58      0       1       0.7 (g1c025)
    ``agme+repair``        51 -> 56      3       1       14.2 (g1c000)
    ``baerase+repair``     25 -> 51      13      6       18.0 (g1c023)
    ``nc-unlearn+repair``  17 -> 48      15      8       20.1 (g1c047)
    =====================  ============  ======  ======  ==========================

After the edits the repair changes one row of a layer the edit barely touched (with backdoor knowledge) or the same
output layer (the blind edit on the BatchNorm network: all three raised cells are its WaNet cells). After the
gradient-based unlearning, which changes every layer, it raised the asr on about a quarter of the cells, by 10
points or more on 4 (``baerase``) and 5 (``nc-unlearn``): the recovered trigger it holds down is not the
attacker's, and lifting the target's row lifts what the two share. The repair never bringing the backdoor back is
not met there.

Which triggers are held *[ours]*: the one the unlearning used and every other kind of recovered trigger that reaches
the target on at least :data:`~unlearnlib.recovery.target_search.KEEP_RATE` of the held-out images
(``repair_hold_kinds="firing"``, :attr:`~.base.DefenseResult.also_fires`). BAERASE unlearns the kind that fires most
often, mostly the faint blend, and on a patch backdoor the attacker's patch then survives in part; lifting the
target's row lifted it back (g0c050, IMC on the BatchNorm network: 35% asr after unlearning, 91% after the repair;
10% with the patch held too). Holding the recovered patch too keeps its keys at the lower value. Chosen on grid seed
0 and judged on grid seed 1 (60 cells each, the same unlearned models, ``--defense-param
baerase+repair:repair_hold_kinds=used`` for the earlier default), ``baerase+repair``, used -> firing:

    ==========================================  =====================  =====================
    (cells of 60)                               grid seed 0 (tuning)   grid seed 1 (held out)
    ==========================================  =====================  =====================
    success                                     19 -> 20               20 -> 22
    asr <= 2%                                   25 -> 26               24 -> 27
    asr median (%)                              4.1 -> 2.9             3.8 -> 2.7
    asr raised by the repair (> 1 point)        24 -> 13               29 -> 13
    ... by 10 points or more                    11 -> 3                16 -> 4
    pushed over 2% by the repair                5 -> 4                 7 -> 6
    target drop <= 3 after the repair           53 -> 53               56 -> 51
    worst target drop (points)                  6 -> 7                 10 -> 11
    ==========================================  =====================  =====================

The cost is the target class on a few cells (held out: five more over its bound, by 1-5 points); our reading: the
recovered patch carries target-class strokes too, and holding its images down holds back part of the lift. The other
compositions hold what they held before: the blind edit already unlearns every kind that fires, Neural Cleanse
recovers one trigger per class and the edit with backdoor knowledge is given the trigger.

The bias is folded into the weight (``w = [w | b]``, ``k = [k; 1]``) *[ours]*: gradient-based unlearning
shifts the output biases too. The clean images of the other classes are pulled to f0's outputs as well, not held at
f1's *[ours]*: held at f1's outputs (with the triggered keys), they also hold every shift of the target's logit that
unlearning made (a planted toy whose unlearning lowered the target's bias got only 87-91% of its 99% target_acc back
so, for any a; with the triggered keys alone at the lower value, 96%: there the true trigger was edited out, so its
keys are close to clean ones).

Why the output layer: its values are the logits, which mean the same thing whatever the unlearning changed upstream
-- a gradient-based defense (BAERASE, Neural Cleanse unlearning) changes every layer, so a hidden layer's original
values would be read by a different downstream network. Measured (badnets, target 3, 5% poison, seed 0, ``nc-unlearn``:
target_acc 93% -> 85% after unlearning): the output layer alone gave it back (94%), the late layer then
the output layer did not (89%), both with the other classes and triggered keys held at f1's outputs.

Why the target's row alone, and h = 1 *[ours]* (the repair solved every row with h = 10 before the robustness grid):
the repair exists to give back one class's score. Refitting all ten rows to f0 from a few dozen images also refits
the classes unlearning never touched, and a heavy weight on the recovered trigger's keys fits an approximation of
the trigger more closely than the clean images; both cost accuracy on test images. Chosen on grid seed 0 (a sweep
of a, h and mu, all rows or the target's, on the same unlearned models) and judged on grid seed 1, 60 cells each,
after ``agme`` / ``agme-bdk`` (grid seed 1 through the grid runner: ``bench --grid robustness --grid-seed 1
--defenses agme+repair agme-bdk+repair``); all rows with h = 10 -> the target's row with h = 1:

    =============  ==============================  ==============================
    after          grid seed 0 (tuning)            grid seed 1 (held out)
    =============  ==============================  ==============================
    ``agme``       success 25.0 -> 25.0%,          success 23.3 -> 30.0%,
                   median acc drop 1.45 -> 0.60,   median acc drop 1.2 -> 0.6,
                   target drop <= 3: 75 -> 90%     target drop <= 3: 80 -> 87%
    ``agme-bdk``   success 65.0 -> 70.0%,          success 66.7 -> 71.7%,
                   target drop <= 3: 83 -> 88%     target drop <= 3: 85 -> 92%
    =============  ==============================  ==============================

(``agme`` as it was then, one key per unseen image; with its shifted keys, :class:`~.agme.Agme`, ``agme+repair``
succeeds in 35.0% of grid seed 1's cells.) On grid seed 0 the repair after ``agme-bdk`` still does worse than none
(78.3% success unrepaired): where the known trigger's edit took nothing from the target class the repair can only
add noise. Other weights *[ours]*: a = 100, mu = 1 (the nc-unlearn setting above: a = 10 gave 87%, a = 100 92%,
the asr 0.7-0.8% either way, down from 8.7%). The asr after repair is measured on the test set by the experiment
(never by the defense). No label beyond the defender's own, no training data, no true trigger unless the
unlearning defense is given it (``agme-bdk``; its target is then the class the known trigger sends the unseen
samples to in f0).

The composition: ``<defense>+repair`` for every unlearning defense (one that recovers, or is given, a trigger and
a target: ``baerase``, ``nc-unlearn``, ``agme``, ``agme-bdk``), built by :func:`compose_repair`. Its info holds
the inner defense's info, the repair's, and the defender-side target-class accuracy ``defender_target_acc``
before / after unlearning / after repair (in-sample: measured on D_t itself); the test-set
target_acc of the three models is added by :func:`unlearnlib.experiment.run_defense`, which evaluates the
intermediate model :attr:`DefenseResult.unlearned`.
"""

from __future__ import annotations

import copy
import inspect
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
from .base import Defense, DefenseResult

HOLD_KINDS = ("used", "firing")  # the triggers held: the one unlearning used, or every recovered kind that fires
HOLDS = ("lower", "cleaned")  # the triggered keys' target value: the lower of cleaned / unlearned, or cleaned alone
LIFTS = ("needed", "full")  # how far the target's row moves toward its solution: what the target images need, or all


def check_lift(lift: str, name: str = "lift") -> str:
    """``lift`` checked against :data:`LIFTS` (the error names the parameter ``name``)."""
    return check_choice(lift, LIFTS, name, "how far the target's row moves: only as far as the defender's "
                        "target-class images need, or to the repair's solution")


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


def needed_lift(logits1: torch.Tensor, logits_full: torch.Tensor, logits0: torch.Tensor, target: int) -> float:
    """*[ours]* The (lift): the smallest step ``g`` in [0, 1] along the target row's change ``w1 -> w'`` after which
    as many of the defender's target-class images (logits ``logits1`` in f1, ``logits_full`` with the whole
    change, ``logits0`` in f0; only the target's logit differs between the first two) are classified ``target``
    as in f0 or with the whole change, whichever is fewer. The target logit is linear in ``g``, so each image's
    threshold is exact: ``g_i = (max_{c != t} l1_c - l1_t) / (l'_t - l1_t)``. 0 when f1 already keeps them."""
    l1t = logits1[:, target]
    others = torch.cat([logits1[:, :target], logits1[:, target + 1:]], 1).max(1).values
    need = min(int((logits0.argmax(1) == target).sum()), int((logits_full.argmax(1) == target).sum()))
    if need == 0:
        return 0.0
    d = logits_full[:, target] - l1t
    g = torch.where(l1t > others, torch.zeros_like(d), torch.where(
        d > 0, (others - l1t) / d.clamp_min(1e-12), torch.full_like(d, float("inf"))))
    return float(min(1.0, torch.sort(g).values[need - 1].item() * 1.001 + 1e-6))  # just past each threshold


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
           hold: str = "lower", also_hold: Sequence[TriggerArg] = (),
           lift: str = "full") -> tuple[nn.Module, dict[str, Any]]:
    """The (repair) edit of ``unlearned``, IN PLACE (callers pass a copy), layer after layer in forward order, each
    with the keys of the model repaired so far; returns it and an info dict. On the output layer only the
    ``target``'s row (and bias) changes; a hidden layer named in ``layers`` is solved whole.

    ``keep_weight`` is a, ``hold_weight`` h, ``mu`` the pull to the unlearned weights; ``hold="lower"`` holds the
    triggered keys' target logit at min(cleaned, unlearned), ``"cleaned"`` at the cleaned value alone (the first
    version, for comparison); ``also_hold``: more triggers whose keys are held the same way (each with ``draws``
    applications); ``lift="needed"`` moves the target's row only as far as :func:`needed_lift` says, ``"full"``
    to the solution; ``original`` is f0 (not modified; same architecture). Raises if ``unseen`` has no sample of
    ``target``."""
    for name, v in (("keep_weight", keep_weight), ("hold_weight", hold_weight), ("mu", mu)):
        check_number(v, name)
    if not keep_weight > 0:
        raise ValueError(f"keep_weight must be > 0 (the weight of the target-class keys), got {keep_weight!r}")
    check_positive_int(draws, "draws")
    check_hold(hold)
    check_lift(lift)
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
    a, solve_seconds, n_keep, gamma = float(keep_weight), 0.0, 0, 1.0
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
        if is_head and lift == "needed":  # [ours] the (lift): only as far as the target images need
            kt = keys[0] / sa
            w1_all = torch.cat([weight_matrix(head), _bias(head)[:, None]], 1)
            logits1 = kt @ w1_all.T
            logits_full = logits1.clone()
            logits_full[:, rows] = kt @ new_w.T
            logits0 = _ones(layer_keys(original, head0, xt)) @ torch.cat(
                [weight_matrix(head0).float(), _bias(head0)[:, None]], 1).T
            gamma = needed_lift(logits1, logits_full, logits0, target)
            new_w = w1 + gamma * (new_w - w1)
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
                              "repair_lift": lift, "repair_gamma": gamma,
                              "repair_held_triggers": len(holds),
                              "repair_solve_seconds": solve_seconds,
                              "repair_seconds": time.perf_counter() - start}


class Repaired(Defense):
    """An unlearning defense followed by :func:`repair` (subclassed once per inner defense by
    :func:`compose_repair`). Repair parameters: ``keep_weight``, ``hold_weight``, ``repair_mu``, ``draws``,
    ``augment_repair``, ``repair_layers``, ``repair_hold`` (:func:`repair`'s ``hold``), ``repair_hold_kinds``
    (``"firing"``: hold the trigger the unlearning used and every other recovered kind that reaches the target,
    :attr:`DefenseResult.also_fires`, *[ours]*; ``"used"``: that trigger alone, the earlier default),
    ``repair_lift`` (:func:`repair`'s ``lift``); every other argument goes to the inner defense."""

    inner: str = ""
    shareable = False  # its inner defense's run is what is shared (Defense.__call__)

    def __init__(self, keep_weight: float = 100.0, hold_weight: float = 1.0, repair_mu: float = 1.0,
                 draws: int = 4, augment_repair: bool = True, repair_layers: str | list[str] | None = None,
                 repair_hold: str = "lower", repair_hold_kinds: str = "firing", repair_lift: str = "full",
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
        self.inner_defense = DEFENSES.get(self.inner)(**kw)
        super().__init__(device=self.inner_defense.device, seed=self.inner_defense.seed,
                         progress=self.inner_defense.progress)
        self.repair_kwargs = {"keep_weight": float(keep_weight), "hold_weight": float(hold_weight),
                              "mu": float(repair_mu), "draws": check_positive_int(draws, "draws"),
                              "augment": augment_repair, "hold": check_hold(repair_hold, "repair_hold"),
                              "lift": check_lift(repair_lift, "repair_lift"),
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
        return DefenseResult(repaired, info, out.trigger, out.target, unlearned=out.model)


def compose_repair(name: str) -> type[Repaired]:
    """The class of ``<name>+repair``: the registered unlearning defense ``name``, then :func:`repair`.

    Only an unlearning defense composes (``repairable``): one that recovers a trigger and target, or is given the
    trigger -- the repair needs the trigger to hold and the class to give back -- and does not repair already."""
    inner = DEFENSES.get(name)
    if issubclass(inner, Repaired) or not getattr(inner, "repairable", False):
        raise ValueError(f"defense={name!r} is not an unlearning defense that the repair step can follow (it must "
                         f"recover or be given a trigger and target, and not repair already); expected one of: "
                         f"{', '.join(repairable())}")
    own = [p for p in inspect.signature(Repaired.__init__).parameters.values() if p.kind is p.KEYWORD_ONLY
           or (p.default is not p.empty)]
    inner_params = [p.replace(kind=p.KEYWORD_ONLY) for p in inspect.signature(inner).parameters.values()
                    if p.kind not in (p.VAR_KEYWORD, p.VAR_POSITIONAL) and p.name not in {q.name for q in own}]
    cls = type(inner.__name__ + "Repaired", (Repaired,), {
        "name": f"{name}+repair", "inner": name, "default_unseen": inner.default_unseen,
        "needs_trigger": inner.needs_trigger, "min_classes": max(2, inner.min_classes), "recovers_trigger":
        inner.recovers_trigger, "__doc__": f"``{name}``, then the repair of the target class (:func:`repair`).",
        "__module__": __name__})
    cls.__signature__ = inspect.Signature([p.replace(kind=p.KEYWORD_ONLY) for p in own] + inner_params)
    return cls


def repairable() -> tuple[str, ...]:
    """The registered defenses the repair step can follow (``repairable``), in registry order."""
    return tuple(n for n in DEFENSES.names() if getattr(DEFENSES.get(n), "repairable", False))


def register_compositions() -> list[str]:
    """Register ``<name>+repair`` for every :func:`repairable` defense not composed yet; returns the new names
    (:mod:`unlearnlib.defenses` calls it once every member is registered)."""
    new = [f"{n}+repair" for n in repairable() if f"{n}+repair" not in DEFENSES]
    for composed in new:
        DEFENSES.register(composed)(compose_repair(composed.removesuffix("+repair")))
    return new
