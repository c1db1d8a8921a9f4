"""The torchvision loaders of unlearnlib.data, run through their real code on fixture files in the real on-disk
formats (tests/fixtures_data.py): what is written is what the split holds.

Integrity checks: torchvision's CIFAR10 compares the md5 of each batch file and of ``batches.meta`` with
constants of the class; the test monkeypatches those class attributes (``train_list``, ``test_list``, ``meta``)
to the fixture's own digests for the duration of the test, and also checks that without the patch the loader
refuses the fixture (so the check is live). MNIST/Fashion-MNIST and GTSRB only check that their files/folders
exist: the fixtures pass those checks as written. The library code is untouched.
"""

from __future__ import annotations

import fixtures_data as fx
import numpy as np
import pytest
import torch
import torchvision

from unlearnlib.data import DatasetUnavailable, load_dataset


@pytest.fixture
def data_root(tmp_path, monkeypatch):
    monkeypatch.setenv("UNLEARNLIB_DATA", str(tmp_path))
    return tmp_path


def _rows(x: torch.Tensor) -> list[bytes]:
    """Each image as bytes of its uint8 pixels (NCHW float in [0, 1] -> exact uint8)."""
    u8 = (x * 255).round().to(torch.uint8)
    return [bytes(r.numpy().tobytes()) for r in u8.reshape(len(u8), -1)]


def _assert_same_images(got_x, got_y, want_x_nchw: np.ndarray, want_y: np.ndarray) -> None:
    """``got`` holds exactly the written images with their labels, in any order."""
    want = {bytes(r.tobytes()): int(y) for r, y in zip(want_x_nchw.reshape(len(want_x_nchw), -1), want_y)}
    got = dict(zip(_rows(got_x), got_y.tolist()))
    assert len(got_x) == len(want_x_nchw) and got == want


def _patch_cifar_md5(monkeypatch, root) -> None:
    for attr, value in fx.cifar10_md5s(root).items():
        monkeypatch.setattr(torchvision.datasets.CIFAR10, attr, value)


def test_cifar10_python_batches_load_through_the_real_loader(data_root, monkeypatch):
    written = fx.write_cifar10(data_root, per_batch=60, n_test=100)
    _patch_cifar_md5(monkeypatch, data_root)
    split = load_dataset("cifar10", seed=0)
    assert split.image_shape == (3, 32, 32) and split.num_classes == 10
    assert split.train.x.dtype == torch.float32 and 0 <= float(split.train.x.min()) <= float(split.train.x.max()) <= 1
    # the official train split in file order: pixels (channel-major rows -> NCHW) and labels exactly as written
    want_train = written["train_x"].transpose(0, 3, 1, 2)
    assert torch.equal((split.train.x * 255).round().to(torch.uint8), torch.from_numpy(want_train))
    assert split.train.y.tolist() == written["train_y"].tolist()
    # the test batch is split into the defender pool and the test set: disjoint, together exactly the batch
    assert len(split.defender) == 50 and len(split.test) == 50  # 1,000 asked, at most half of a 100-image split
    both_x = torch.cat([split.defender.x, split.test.x])
    both_y = torch.cat([split.defender.y, split.test.y])
    _assert_same_images(both_x, both_y, written["test_x"].transpose(0, 3, 1, 2), written["test_y"])


def test_cifar10_integrity_check_is_live(data_root):
    fx.write_cifar10(data_root, per_batch=10, n_test=10)  # md5s differ from the real files: torchvision refuses
    with pytest.raises(DatasetUnavailable, match="cifar10.*corrupted.*--download"):
        load_dataset("cifar10")


def test_cifar10_corrupted_batch_is_refused(data_root, monkeypatch):
    fx.write_cifar10(data_root, per_batch=10, n_test=10)
    _patch_cifar_md5(monkeypatch, data_root)
    batch = data_root / fx.CIFAR_FOLDER / "data_batch_3"
    batch.write_bytes(batch.read_bytes()[:-1] + b"\x00")
    with pytest.raises(DatasetUnavailable, match="corrupted"):
        load_dataset("cifar10")


@pytest.mark.parametrize("name,folder", [("mnist", "MNIST"), ("fashion-mnist", "FashionMNIST")])
def test_mnist_idx_files_load_through_the_real_loader(data_root, name, folder):
    written = fx.write_mnist(data_root, folder, n_train=300, n_test=200)
    split = load_dataset(name, seed=1)
    assert split.image_shape == (1, 28, 28) and split.num_classes == 10
    assert torch.equal((split.train.x * 255).round().to(torch.uint8)[:, 0], torch.from_numpy(written["train_x"]))
    assert split.train.y.tolist() == written["train_y"].tolist()
    assert len(split.defender) == 100 and len(split.test) == 100
    _assert_same_images(torch.cat([split.defender.x, split.test.x]), torch.cat([split.defender.y, split.test.y]),
                        written["test_x"][:, None], written["test_y"])
    assert sorted(split.defender.y.unique().tolist()) == list(range(10))  # stratified


def test_mnist_missing_file_is_a_clear_error(data_root):
    fx.write_mnist(data_root, "MNIST", n_train=20, n_test=20)
    (data_root / "MNIST" / "raw" / "t10k-labels-idx1-ubyte").unlink()
    with pytest.raises(DatasetUnavailable, match="dataset='mnist'.*download"):
        load_dataset("mnist")


def test_gtsrb_folders_and_csv_load_through_the_real_loader(data_root):
    written = fx.write_gtsrb(data_root, per_class=5, n_test=120)
    split = load_dataset("gtsrb", seed=0)
    assert split.image_shape == (3, 32, 32) and split.num_classes == 43  # every crop resized to 32 x 32
    assert split.train.y.tolist() == written["train_y"].tolist()  # class folders in order, 5 images each
    assert len(split.defender) == 60 and len(split.test) == 60
    labels = torch.cat([split.defender.y, split.test.y]).sort().values
    assert labels.tolist() == sorted(written["test_y"].tolist())  # the CSV's ClassId column
    assert 0 <= float(split.test.x.min()) and float(split.test.x.max()) <= 1
    # colour survives: the fixture images are not grey, so the three channels differ somewhere
    assert float((split.test.x[:, 0] - split.test.x[:, 1]).abs().max()) > 0.05


def test_gtsrb_missing_folder_is_a_clear_error(data_root):
    with pytest.raises(DatasetUnavailable, match="dataset='gtsrb'.*mnist5k"):
        load_dataset("gtsrb")


def test_a_test_split_of_one_image_is_refused(data_root):
    fx.write_mnist(data_root, "MNIST", n_train=20, n_test=1)
    with pytest.raises(DatasetUnavailable, match="1 images"):
        load_dataset("mnist")
