"""Layer 5, defenses: one class per method, one uniform call (:class:`.base.Defense`), one file per defense, each
registering itself in :data:`~unlearnlib.core.registry.DEFENSES` with its metadata on the class (``colour``,
``smoke_params``, ``repairable``); :mod:`.compose_repair` adds ``<name>+repair`` for every repairable one. Imports
the layers below it only (core, data, models, ml, recover).
"""

from ..core.registry import import_members
from .base import Defense, DefenseResult, NoDefense, get_defense
from .compose_repair import register_compositions, repairable

import_members(__name__, __path__, skip=("base", "compose_repair"))
register_compositions()

__all__ = ["Defense", "DefenseResult", "NoDefense", "get_defense", "repairable"]
