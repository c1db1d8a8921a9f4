"""Per-attack training rules of a profile (``Profile.attack_training``): they apply to the matching attack only."""

from __future__ import annotations

from unlearnlib.profiles import Profile, get_profile

RANDOM = {"position": "random", "pattern": "random"}


def test_attack_training_rule_applies_to_the_matching_attack_only():
    quick = get_profile("quick")
    prof = Profile(**{**quick.to_dict(), "attack_training": (("badnets", {"position": "random"}, {"epochs": 30}),)})
    assert prof.train_kwargs()["epochs"] == 10  # the clean model
    assert prof.train_kwargs("badnets", {"size": 3})["epochs"] == 10
    assert prof.train_kwargs("blended", RANDOM)["epochs"] == 10
    assert prof.train_kwargs("badnets", {"size": 3, **RANDOM})["epochs"] == 30
    assert quick.train_kwargs("badnets", RANDOM) == quick.train_kwargs()  # no rule set in quick
