import pytest
import torch

from unlearnlib.data import Data, DatasetUnavailable, load_dataset, stratified_order


@pytest.fixture(scope="module")
def split():
    return load_dataset("mnist5k", seed=0)


def test_mnist5k_split_sizes_and_format(split):
    assert (len(split.train), len(split.test), len(split.defender)) == (3500, 1000, 500)
    assert split.image_shape == (1, 28, 28) and split.num_classes == 10
    assert split.train.x.dtype == torch.float32 and 0 <= split.train.x.min() and split.train.x.max() <= 1


def test_mnist5k_split_is_stratified(split):
    for part, per_class in ((split.train, 350), (split.test, 100), (split.defender, 50)):
        assert torch.bincount(part.y, minlength=10).tolist() == [per_class] * 10


def test_mnist5k_parts_are_disjoint(split):
    rows = {p: {tuple(r) for r in part.x.flatten(1)[:, ::7].mul(255).round().int().tolist()}
            for p, part in (("train", split.train), ("test", split.test), ("defender", split.defender))}
    # identical digits can occur twice in MNIST; overlap of sub-sampled pixel rows must be (nearly) empty
    assert len(rows["train"] & rows["test"]) <= 2 and len(rows["train"] & rows["defender"]) <= 2


def test_split_is_deterministic_and_seed_dependent(split):
    again, other = load_dataset("mnist5k", seed=0), load_dataset("mnist5k", seed=1)
    assert torch.equal(again.train.x, split.train.x) and torch.equal(again.defender.y, split.defender.y)
    assert not torch.equal(other.train.x, split.train.x)


def test_take_is_class_balanced_prefix(split):
    ten = split.defender.take(10, seed=0)
    assert sorted(ten.y.tolist()) == list(range(10))
    assert torch.equal(split.defender.take(25, 0).x[:10], ten.x)


def test_take_rejects_bad_n(split):
    with pytest.raises(ValueError, match="n must be"):
        split.defender.take(501)
    with pytest.raises(ValueError, match="n must be"):
        split.defender.take(0)


def test_stratified_order_is_a_permutation():
    y = torch.tensor([0, 0, 0, 1, 2, 2])
    order = stratified_order(y, 3)
    assert sorted(order.tolist()) == list(range(6)) and set(y[order[:3]].tolist()) == {0, 1, 2}


def test_data_validates_shape_and_dtype():
    with pytest.raises(ValueError, match="x must have shape"):
        Data(torch.rand(4, 28, 28), torch.zeros(4, dtype=torch.long))
    with pytest.raises(TypeError, match="floating-point"):
        Data(torch.zeros(4, 1, 28, 28, dtype=torch.uint8), torch.zeros(4, dtype=torch.long))
    with pytest.raises(TypeError, match="y must be"):
        Data(torch.rand(4, 1, 28, 28), torch.zeros(3, dtype=torch.long))


def test_holdout_split_holds_out_a_class_balanced_prefix(split):
    d = split.defender.take(175, seed=0)
    train, heldout = d.holdout_split(0.2, seed=0)
    assert (len(train), len(heldout)) == (140, 35) and len(set(heldout.y.tolist())) == 10
    first, rest = d.split(35, 0)  # the prefix of the seeded stratified order, the rest trains
    assert torch.equal(heldout.x, first.x) and torch.equal(train.x, rest.x)


def test_holdout_split_keeps_one_sample_per_class_when_there_are_two_per_class(split):
    train, heldout = split.defender.take(20, seed=0).holdout_split(0.1, seed=0)
    assert (len(train), len(heldout)) == (10, 10) and sorted(heldout.y.tolist()) == list(range(10))
    train, heldout = split.defender.take(10, seed=0).holdout_split(0.2, seed=0)  # a handful: 8 + 2
    assert (len(train), len(heldout)) == (8, 2)
    with pytest.raises(ValueError, match="^defender has 2 samples: too few to hold out 2"):
        split.defender.take(2, seed=0).holdout_split(0.9, seed=0, param="defender")


@pytest.mark.parametrize("holdout", [0.0, 1.0, -0.2, "0.2", True])
def test_holdout_split_rejects_a_bad_fraction(split, holdout):
    with pytest.raises(ValueError, match="^holdout must be a number in"):
        split.defender.holdout_split(holdout)


def test_unknown_dataset_lists_valid_names():
    with pytest.raises(ValueError, match="dataset='nope' is not known; expected one of: .*mnist5k"):
        load_dataset("nope")


def test_torchvision_dataset_offline_gives_one_clear_message(tmp_path, monkeypatch):
    monkeypatch.setenv("UNLEARNLIB_DATA", str(tmp_path))
    with pytest.raises(DatasetUnavailable, match="mnist5k' works offline"):
        load_dataset("cifar10", download=False)
