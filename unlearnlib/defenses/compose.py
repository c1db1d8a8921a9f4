"""Compositions: a registered unlearning defense followed by a step of its own, registered as ``<defense><suffix>``.

A step is a :class:`Composed` subclass with a ``suffix`` and its own keyword parameters; :func:`compose` makes its
class for one inner defense (the name, the metadata the inner defense carries, and one signature: the step's
parameters, then the inner defense's), and :func:`register_compositions` registers it for every defense the step
can follow (``follows``): an unlearning defense (``repairable``: it returns a trigger and target, or is given the
trigger) that is not itself a composition. A new step is one subclass in its own file and one entry in the
tuple :mod:`unlearnlib.defenses` registers; the step today: ``+repair`` (:mod:`.compose_repair`).
"""

from __future__ import annotations

import inspect
from typing import Any, ClassVar

from ..core.registry import DEFENSES
from .base import Defense


class Composed(Defense):
    """An inner defense (``inner``, built from every keyword the step does not take) and then a step (its ``run``)."""

    inner: ClassVar[str] = ""
    suffix: ClassVar[str] = ""
    step: ClassVar[str] = ""  # what the step does, for the composed class's docstring
    shareable = False  # its inner defense's run is what is shared (Defense.__call__)
    repairable = False

    def __init__(self, **kw: Any) -> None:
        self.inner_defense = DEFENSES.get(self.inner)(**kw)
        super().__init__(device=self.inner_defense.device, seed=self.inner_defense.seed,
                         progress=self.inner_defense.progress)

    @classmethod
    def follows(cls, inner: type[Defense]) -> bool:
        """Whether the step can follow the defense ``inner``: an unlearning defense, not a composition."""
        return getattr(inner, "repairable", False) and not issubclass(inner, Composed)


def compose(step: type[Composed], name: str) -> type[Composed]:
    """The class of ``<name><step.suffix>``: the registered defense ``name``, then ``step``."""
    inner = DEFENSES.get(name)
    if not step.follows(inner):
        valid = [n for n in DEFENSES.names() if step.follows(DEFENSES.get(n))]
        raise ValueError(f"defense={name!r} is not an unlearning defense that {step.suffix} can follow (it must "
                         f"recover or be given a trigger and target, and not be a composition); expected one of: "
                         f"{', '.join(valid)}")
    own = [p for p in inspect.signature(step.__init__).parameters.values()
           if p.name != "self" and p.kind not in (p.VAR_KEYWORD, p.VAR_POSITIONAL)]
    inner_params = [p.replace(kind=p.KEYWORD_ONLY) for p in inspect.signature(inner).parameters.values()
                    if p.kind not in (p.VAR_KEYWORD, p.VAR_POSITIONAL) and p.name not in {q.name for q in own}]
    cls = type(inner.__name__ + step.__name__, (step,), {
        "name": f"{name}{step.suffix}", "inner": name, "default_unseen": inner.default_unseen,
        "needs_trigger": inner.needs_trigger, "min_classes": max(2, inner.min_classes),
        "recovers_trigger": inner.recovers_trigger, "__doc__": f"``{name}``, then {step.step}.",
        "__module__": step.__module__})
    cls.__signature__ = inspect.Signature([p.replace(kind=p.KEYWORD_ONLY) for p in own] + inner_params)
    return cls


def register_compositions(steps: tuple[type[Composed], ...]) -> list[str]:
    """Register ``<name><suffix>`` for every step and every defense it follows, not registered yet; returns the
    new names (:mod:`unlearnlib.defenses` calls it once every member is registered)."""
    new = []
    for step in steps:
        for name in [n for n in DEFENSES.names() if step.follows(DEFENSES.get(n))]:
            if f"{name}{step.suffix}" not in DEFENSES:
                DEFENSES.register(f"{name}{step.suffix}")(compose(step, name))
                new.append(f"{name}{step.suffix}")
    return new
