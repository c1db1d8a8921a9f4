"""One registry class; one instance each for datasets, models, attacks and defenses.

A family (``unlearnlib.data``, ``unlearnlib.models``, ``unlearnlib.attacks``, ``unlearnlib.defenses``) is a package
with one file per member; each member registers itself with a decorator, ``@ATTACKS.register("badnets")``, and the
package imports every member file with :func:`import_members`. Adding a member touches its own file only.
"""

from __future__ import annotations

import importlib
import pkgutil
from collections.abc import Callable, Iterable, Iterator
from typing import Generic, TypeVar

T = TypeVar("T")


class Registry(Generic[T]):
    """A name -> factory table whose lookup errors name the parameter and the valid choices."""

    def __init__(self, kind: str) -> None:
        self.kind = kind
        self._items: dict[str, T] = {}

    def register(self, name: str) -> Callable[[T], T]:
        """Decorator: ``@DEFENSES.register("agme-bdk")``."""

        def deco(obj: T) -> T:
            if name in self._items:
                raise ValueError(f"{self.kind} {name!r} is registered twice")
            self._items[name] = obj
            return obj

        return deco

    def get(self, name: str) -> T:
        if not isinstance(name, str) or name not in self._items:
            raise ValueError(
                f"{self.kind}={name!r} is not known; expected one of: {', '.join(self.names())}"
            )
        return self._items[name]

    def names(self) -> list[str]:
        return list(self._items)

    def __contains__(self, name: object) -> bool:
        return name in self._items

    def __iter__(self) -> Iterator[str]:
        return iter(self._items)


DATASETS: Registry = Registry("dataset")
MODELS: Registry = Registry("model")
ATTACKS: Registry = Registry("attack")
DEFENSES: Registry = Registry("defense")


def import_members(package: str, path: Iterable[str], skip: tuple[str, ...] = ()) -> list[str]:
    """Import every module of ``package`` (its ``__name__`` and ``__path__``) but those in ``skip`` and private
    ones (``_name``), in name order, so that each registers itself; returns the module names imported."""
    names = sorted(m.name for m in pkgutil.iter_modules(list(path))
                   if not m.name.startswith("_") and m.name not in skip)
    for name in names:
        importlib.import_module(f"{package}.{name}")
    return names
