"""Defenses: one class per method, one uniform call (see :class:`unlearnlib.defenses.base.Defense`).

Importing this package registers every defense in :data:`unlearnlib.registry.DEFENSES`.
"""

from __future__ import annotations

import importlib
import pkgutil

from .base import Defense, DefenseResult, NoDefense, get_defense

for _m in pkgutil.iter_modules(__path__):  # register every defense module that lives here
    if _m.name != "base":
        importlib.import_module(f"{__name__}.{_m.name}")

__all__ = ["Defense", "DefenseResult", "NoDefense", "get_defense"]
