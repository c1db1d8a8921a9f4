"""Layer 5, defenses: one class per method, one uniform call (:class:`.base.Defense`), one file per defense, each
registering itself in :data:`~unlearnlib.core.registry.DEFENSES` with its metadata on the class (``colour``,
``smoke_params``, ``repairable``); :mod:`.compose` adds the composition ``<name>+repair`` (:mod:`.compose_repair`)
for every unlearning one. Imports the layers below it only (core, data, models, ml, recover).
"""

from ..core.registry import import_members
from .base import Defense, DefenseResult, NoDefense, get_defense
from .compose import register_compositions
from .compose_repair import Repaired, repairable

import_members(__name__, __path__, skip=("base", "compose", "compose_repair"))
register_compositions((Repaired,))

__all__ = ["Defense", "DefenseResult", "NoDefense", "get_defense", "repairable"]
