"""Random-position BadNets (the BAERASE paper's default) plants in the ``quick`` profile.

The planting check trains one clean and one backdoored model at seed 0 through the zoo cache: free on a warm cache,
about 1-2 minutes of CPU on a fresh one (the clean model is shared with every other quick test at seed 0).
"""

from __future__ import annotations

from unlearnlib.experiment import make_scenario
from unlearnlib.profiles import RANDOM_POSITION_EPOCHS, get_profile

RANDOM = {"position": "random", "pattern": "random"}


def test_only_random_position_badnets_trains_longer():
    quick = get_profile("quick")
    assert quick.train_kwargs()["epochs"] == quick.epochs == 10  # the clean model
    assert quick.train_kwargs("badnets", {"size": 3})["epochs"] == 10
    assert quick.train_kwargs("blended", RANDOM)["epochs"] == 10
    assert quick.train_kwargs("badnets", {"size": 3, **RANDOM})["epochs"] == RANDOM_POSITION_EPOCHS
    assert get_profile("smoke").train_kwargs("badnets", RANDOM)["epochs"] == 1  # only quick has the rule


def test_random_position_badnets_plants_in_quick():
    sc = make_scenario("quick", "badnets", 0, attack_params=RANDOM, progress=False)
    assert sc.trigger.position == "random" and sc.poison_ratio == 0.1  # the attack itself is unchanged
    assert sc.before["asr"] >= 0.90 and sc.before["acc"] >= 0.95, sc.before
