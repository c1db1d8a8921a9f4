"""Layer 3, attacks: poisoning (:mod:`.base`) and one file per attack, each registering itself in
:data:`~unlearnlib.core.registry.ATTACKS` (like :mod:`unlearnlib.defenses`). Imports the layers below it only.

- :mod:`.badnets`   BadNets (Gu et al. 2017): a patch, fixed or random colour and position
- :mod:`.blended`   Blended (Chen et al. 2017): a blended full-image pattern
- :mod:`.trojannn`  TrojanNN (Liu et al. 2018): a patch optimised to fire chosen neurons of a clean model
- :mod:`.imc`       IMC (Pang et al. 2020): trigger and model co-optimised during poisoning
- :mod:`.wanet`     WaNet (Nguyen & Tran 2021): an invisible warp, with noise mode
"""

from ..core.registry import import_members
from .base import ATTACKER_ASR, Attack, make_trigger
from .patch import LearnedPatch, patch_mask

import_members(__name__, __path__, skip=("base", "patch"))

__all__ = ["ATTACKER_ASR", "Attack", "LearnedPatch", "make_trigger", "patch_mask"]
