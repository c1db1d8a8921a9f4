import pytest
import torch

from unlearnlib.attacks import Attack, make_trigger
from unlearnlib.attacks.badnets import BadNets
from unlearnlib.attacks.blended import Blended
from unlearnlib.data import Data
from unlearnlib.ml.triggers import apply_trigger, as_trigger

SHAPE = (1, 28, 28)


def test_badnets_corner_patch_mask_and_pattern():
    t = BadNets(SHAPE, size=3)
    assert t.mask.shape == (1, 28, 28) and t.mask.sum() == 9
    assert t.mask[0, 24:27, 24:27].eq(1).all()  # bottom-right, margin 1
    x = torch.zeros(2, *SHAPE)
    out = t.apply(x)
    assert out[:, 0, 24:27, 24:27].eq(1).all() and out.sum() == 18 and x.sum() == 0  # input untouched


def test_badnets_checker_colour_rgb():
    t = BadNets((3, 32, 32), size=4, pattern="checker", color=(1.0, 0.0, 0.5))
    assert t.patch.shape == (3, 4, 4) and t.patch[1].sum() == 0 and t.patch[0, 0, 0] == 1 and t.patch[0, 0, 1] == 0


def test_badnets_random_position_stays_in_bounds_and_is_deterministic():
    t = BadNets(SHAPE, size=5, position="random", seed=3)
    x = torch.zeros(64, *SHAPE)
    out = t.apply(x)
    assert torch.equal(out, t.apply(x))
    assert out.flatten(1).sum(1).eq(25).all()  # the whole patch is inside every image
    assert len({tuple(o.nonzero()[0].tolist()) for o in out}) > 5  # positions vary


def test_blended_is_convex_mix():
    t = Blended(SHAPE, alpha=0.25)
    x = torch.rand(3, *SHAPE)
    assert torch.allclose(t.apply(x), 0.75 * x + 0.25 * t.pattern)


def test_callable_trigger_and_shape_check():
    assert torch.equal(apply_trigger(lambda x: x * 0, torch.ones(2, *SHAPE)), torch.zeros(2, *SHAPE))
    with pytest.raises(ValueError, match="trigger must keep the input shape"):
        apply_trigger(lambda x: x[:, :, :10], torch.ones(2, *SHAPE))
    with pytest.raises(TypeError, match="trigger must be"):
        as_trigger(42)


def test_poison_all_to_one():
    y = torch.arange(10).repeat(20)
    data = Data(torch.rand(200, *SHAPE), y)
    poisoned, idx = Attack(BadNets(SHAPE), target=0, poison_ratio=0.1).poison(data, seed=0)
    assert len(idx) == 20 and (y[idx] != 0).all() and (poisoned.y[idx] == 0).all()
    untouched = torch.ones(200, dtype=torch.bool)
    untouched[idx] = False
    assert torch.equal(poisoned.x[untouched], data.x[untouched]) and torch.equal(poisoned.y[untouched], y[untouched])


@pytest.mark.parametrize("kwargs, match", [
    ({"size": 28}, "size must fit"),
    ({"size": 0}, "size must be an integer"),
    ({"position": "middle"}, "position must be"),
    ({"pattern": "stars"}, "pattern must be"),
    ({"color": (1, 0)}, "color must be"),
])
def test_badnets_bad_input(kwargs, match):
    with pytest.raises(ValueError, match=match):
        BadNets(SHAPE, **kwargs)


@pytest.mark.parametrize("ratio", [0, -0.1, 1.5, "0.1"])
def test_poison_ratio_outside_unit_interval(ratio):
    data = Data(torch.rand(20, *SHAPE), torch.arange(10).repeat(2))
    with pytest.raises(ValueError, match=r"poison_ratio must be a number in \(0, 1\]"):
        Attack(BadNets(SHAPE), poison_ratio=ratio).poison(data)


def test_target_outside_classes():
    data = Data(torch.rand(20, *SHAPE), torch.arange(10).repeat(2))
    with pytest.raises(ValueError, match=r"target must be a class index in \[0, 9\]"):
        Attack(BadNets(SHAPE), target=10).poison(data)


def test_trigger_rejects_wrong_shape_and_dtype():
    t = BadNets(SHAPE)
    with pytest.raises(ValueError, match="image shape"):
        t.apply(torch.rand(2, 3, 28, 28))
    with pytest.raises(TypeError, match="floating-point"):
        t.apply(torch.zeros(2, *SHAPE, dtype=torch.uint8))
    with pytest.raises(ValueError, match="alpha must be"):
        Blended(SHAPE, alpha=0)


def test_unknown_attack_lists_valid_names():
    with pytest.raises(ValueError, match="attack='lira' is not known; expected one of: badnets, blended"):
        make_trigger("lira", SHAPE)
