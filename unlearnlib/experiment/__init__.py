"""Layer 6, experiments: named presets (:mod:`.profiles`), scenarios (a clean and a backdoored model, cached:
:mod:`.scenario`), defense runs with before/after metrics (:mod:`.runs`), defending a user's checkpoint
(:mod:`.defend`), ``KEY=VALUE`` parameters typed from a constructor (:mod:`.params`) and the chapters' small
studies (:mod:`.studies`). Imports every layer below it (core, data,
models, ml, attacks, recover, defenses)."""

from .defend import defend_checkpoint, export_scenario
from .profiles import PROFILES, Profile, get_profile
from .runs import Defended, Run, apply_defense, run_defense
from .scenario import Scenario, clean_victim, make_scenario, spec_scenario, take_unseen, trained_model
from .studies import bdk_edit, play, sample_efficiency, strength_curve

__all__ = ["PROFILES", "Defended", "Profile", "Run", "Scenario", "apply_defense", "bdk_edit", "clean_victim",
           "defend_checkpoint",
           "export_scenario", "get_profile", "make_scenario", "play", "run_defense", "sample_efficiency",
           "spec_scenario", "strength_curve", "take_unseen", "trained_model"]
