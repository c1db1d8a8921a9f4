"""The defense interface: ``Defense(**hyperparameters)(model, defender, trigger=..., target=...)``.

A defense never modifies the model passed in; it returns a new one in :class:`DefenseResult` together with
an ``info`` dict of whatever it found (recovered target, per-class scores, timings of its phases).
"""

from __future__ import annotations

import copy
import inspect
from dataclasses import dataclass, field, replace
from typing import Any, ClassVar

import torch
from torch import nn

from ..core.checks import check_class, check_classifier, check_eval_mode
from ..core.device import resolve_device
from ..core.memo import shared_result
from ..core.registry import DEFENSES
from ..data import Data
from ..ml.triggers import TriggerArg, as_trigger


@dataclass
class DefenseResult:
    """The defended ``model``, an ``info`` dict, and -- for a defense that recovers them -- the ``trigger`` (an
    object with ``.apply(x)``) and ``target`` it found, so a caller can measure the recovered trigger's asr.
    A composed ``<defense>+repair`` also returns the model after its unlearning step, before the repair, as
    ``unlearned`` (so the caller can measure target_acc before / after unlearning / after repair). ``also_fires``:
    the other recovered triggers that reach the target but were not unlearned (BAERASE's other kinds), which the
    repair holds down too. ``detected``: whether the defense's own statistics found a backdoor (the target search's
    outlier, Neural Cleanse's anomaly index); None for a defense that does not decide (given the trigger or the
    target, or searching none)."""

    model: nn.Module
    info: dict[str, Any] = field(default_factory=dict)
    trigger: Any = None
    target: int | None = None
    unlearned: nn.Module | None = None
    also_fires: list[Any] = field(default_factory=list)  # other recovered triggers that reach the target
    detected: bool | None = None  # its own statistics found a backdoor (None: it does not decide)


class Defense:
    """Base class. Subclasses set ``name``, ``default_unseen``, ``needs_trigger`` and implement ``run``."""

    name: ClassVar[str] = "defense"
    default_unseen: ClassVar[int] = 50
    needs_trigger: ClassVar[bool] = False  # True: backdoor knowledge (the trigger is given)
    min_classes: ClassVar[int] = 1  # how many classes the defender set must cover
    recovers_trigger: ClassVar[bool] = False  # True: searches a trigger and target (DefenseResult.trigger/.target)
    shareable: ClassVar[bool] = True  # a blind run may be reused within a memo (__call__); compositions say False
    repairable: ClassVar[bool] = False  # an unlearning defense the repair step can follow: ``<name>+repair`` exists
    colour: ClassVar[str | None] = None  # its colour in every plot, a name of unlearnlib.display.style.PALETTE
    smoke_params: ClassVar[dict[str, Any]] = {}  # a few steps of it: the smoke profile's and the CPU path tests'

    def __init__(self, device: str | torch.device = "auto", seed: int = 0, progress: bool | None = None) -> None:
        self.device = resolve_device(device)
        self.seed = seed
        self.progress = progress

    def __call__(self, model: nn.Module, defender: Data, *, trigger: TriggerArg | None = None,
                 target: int | None = None, num_classes: int | None = None) -> DefenseResult:
        check_classifier(model)
        check_eval_mode(model)
        if not isinstance(defender, Data) or len(defender) == 0:
            raise ValueError("defender must be a non-empty unlearnlib.data.Data set of unseen clean samples")
        if len(defender.classes) < self.min_classes:
            raise ValueError(f"defender must cover at least {self.min_classes} classes for {self.name}, "
                             f"got {len(defender.classes)} ({defender.classes})")
        n_cls = num_classes or _num_classes(model, defender)
        if self.needs_trigger and trigger is None:
            raise ValueError(f"trigger is required by {self.name} (it uses backdoor knowledge)")
        if target is not None:
            check_class(target, n_cls, "target")

        def run() -> DefenseResult:
            work = copy.deepcopy(model).to(self.device).eval()  # never touch the caller's model
            return self.run(work, defender.to(self.device), trigger=as_trigger(trigger) if trigger is not None
                            else None, target=target, num_classes=n_cls)

        if trigger is not None or not self.shareable:
            return run()
        # a blind run is a function of its inputs and settings: within a RecoveryMemo an identical one is reused
        # (the +repair compositions start with exactly the run of their inner defense)
        key = (type(self).__name__, settings(self), model, defender, target, n_cls)
        return shared_result(key, run, fresh_result)

    def run(self, model: nn.Module, defender: Data, *, trigger: Any, target: int | None,
            num_classes: int) -> DefenseResult:
        raise NotImplementedError


def settings(defense: Defense) -> tuple[tuple[str, Any], ...]:
    """Every attribute of ``defense`` (its hyperparameters, seed and device), sorted: what a run depends on besides
    its inputs. Each must be a plain value (numbers, strings, None, tuples, lists and dicts of them, a device), so
    that equal settings read equal (a test checks every registered defense)."""
    return tuple(sorted(vars(defense).items()))


def fresh_result(result: DefenseResult, reused: bool) -> DefenseResult:
    """A copy of ``result`` the caller may change: the models deep-copied, ``info`` and ``also_fires`` new;
    ``info["run_reused"]`` says whether it is an earlier run's (:func:`~unlearnlib.core.memo.shared_result`)."""
    return replace(result, model=copy.deepcopy(result.model), info={**result.info, "run_reused": reused},
                   unlearned=copy.deepcopy(result.unlearned), also_fires=list(result.also_fires))


def _num_classes(model: nn.Module, defender: Data) -> int:
    with torch.no_grad():
        p = next(iter(model.parameters()))
        return int(model.eval()(defender.x[:1].to(p.device)).shape[1])


@DEFENSES.register("none")
class NoDefense(Defense):
    """The identity: ``after = before``."""

    name = "none"
    default_unseen = 0
    colour = "black"

    def run(self, model, defender, *, trigger, target, num_classes):  # noqa: D102
        return DefenseResult(model, {})


def constructor_defaults(cls: type) -> dict[str, Any]:
    """Every keyword a defense class accepts, with its default: its own signature, and where that ends in
    ``**kw`` the keywords of the base classes it passes them to (``agme`` takes ``agme-bdk``'s ``lam``). A class
    with an explicit ``__signature__`` (the ``+repair`` compositions) is taken at its word."""
    own = cls.__dict__.get("__signature__")
    klasses = [cls] if own is not None else [k for k in cls.__mro__ if "__init__" in vars(k)]
    out: dict[str, Any] = {}
    for klass in klasses:
        sig = own if own is not None else inspect.signature(klass.__init__)  # type: ignore[misc]
        params = [p for p in sig.parameters.values() if p.name != "self"]
        for p in params:
            if p.kind not in (p.VAR_KEYWORD, p.VAR_POSITIONAL) and p.name not in out:
                out[p.name] = p.default if p.default is not p.empty else None
        if not any(p.kind is p.VAR_KEYWORD for p in params):
            break
    return out


def settable_params(name: str) -> dict[str, Any]:
    """The keywords a caller may set on the registered defense ``name``, with their defaults:
    :func:`constructor_defaults` without ``device``, ``seed`` and ``progress`` (the command or grid sets those)."""
    return {k: v for k, v in constructor_defaults(DEFENSES.get(name)).items()
            if k not in ("device", "seed", "progress")}


def get_defense(name: str, **params: Any) -> Defense:
    """Instantiate a registered defense by name; unknown names list the valid ones."""
    return DEFENSES.get(name)(**params)
