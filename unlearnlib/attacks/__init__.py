"""Attacks: triggers and poisoning, one file per attack (like :mod:`unlearnlib.defenses`).

- :mod:`.base`      the trigger base, ``as_trigger`` / ``apply_trigger``, ``make_trigger``, :class:`Attack`
- :mod:`.badnets`   BadNets (Gu et al. 2017): a patch, fixed or random colour and position
- :mod:`.blended`   Blended (Chen et al. 2017): a blended full-image pattern
- :mod:`.trojannn`  TrojanNN (Liu et al. 2018): a patch optimised to fire chosen neurons of a clean model
- :mod:`.imc`       IMC (Pang et al. 2020): trigger and model co-optimised during poisoning
- :mod:`.wanet`     WaNet (Nguyen & Tran 2021): an invisible warp, with noise mode
"""

from .badnets import BadNets
from .base import Attack, BaseTrigger, Trigger, TriggerArg, TriggerLike, apply_trigger, as_trigger, make_trigger
from .blended import Blended
from .imc import IMC
from .patch import LearnedPatch, patch_mask
from .trojannn import TrojanNN
from .wanet import WaNet

__all__ = ["Attack", "BaseTrigger", "Trigger", "TriggerArg", "TriggerLike", "apply_trigger", "as_trigger",
           "make_trigger", "BadNets", "Blended", "TrojanNN", "IMC", "WaNet", "LearnedPatch", "patch_mask"]
