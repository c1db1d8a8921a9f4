"""``folder:PATH``: your own images in an ImageFolder layout (unlearnlib.data.folder)."""

import numpy as np
import pytest
import torch
from PIL import Image

from unlearnlib.data import Data, load_dataset
from unlearnlib.data.folder import save_image_folder


def write_folder(root, classes=("cat", "dog", "emu"), per_class=10, size=(8, 8), mode="L", seed=0):
    """PNG files root/<class>/<i>.png with random pixels; returns {path: uint8 array}."""
    rng = np.random.default_rng(seed)
    arrays = {}
    for c in classes:
        (root / c).mkdir(parents=True, exist_ok=True)
        for i in range(per_class):
            shape = (size[1], size[0]) + ((3,) if mode == "RGB" else ())
            a = rng.integers(0, 256, shape, dtype=np.uint8)
            Image.fromarray(a, mode).save(root / c / f"{i:03d}.png")
            arrays[root / c / f"{i:03d}.png"] = a
    return arrays


def test_grey_folder_keeps_one_channel_size_and_sorted_classes(tmp_path):
    write_folder(tmp_path, classes=("zebra", "ant", "moth"))
    split = load_dataset(f"folder:{tmp_path}", seed=0)
    assert split.class_names == ("ant", "moth", "zebra") and split.num_classes == 3
    assert split.image_shape == (1, 8, 8) and split.name == f"folder:{tmp_path}"
    assert (len(split.train), len(split.test), len(split.defender)) == (21, 6, 3)
    for part in (split.train, split.test, split.defender):
        assert sorted(set(part.y.tolist())) == [0, 1, 2]
    assert split.train.x.dtype == torch.float32 and 0 <= split.train.x.min() and split.train.x.max() <= 1


def test_rgb_pixels_are_read_exactly_and_labels_follow_sorted_folders(tmp_path):
    arrays = write_folder(tmp_path, mode="RGB", size=(6, 6), per_class=4)
    split = load_dataset(f"folder:{tmp_path}", seed=0, parts="defender")
    assert split.image_shape == (3, 6, 6) and len(split.train) == 0
    assert (len(split.test), len(split.defender)) == (6, 6)
    both = Data(torch.cat([split.test.x, split.defender.x]), torch.cat([split.test.y, split.defender.y]))
    expected = {(bytes(a.tobytes()), "cat dog emu".split().index(p.parent.name)) for p, a in arrays.items()}
    got = {(bytes((x * 255).round().to(torch.uint8).permute(1, 2, 0).numpy().tobytes()), int(y))
           for x, y in zip(both.x, both.y)}
    assert got == expected


def test_mixed_grey_and_colour_become_rgb(tmp_path):
    write_folder(tmp_path, classes=("a",), mode="L", per_class=10)
    write_folder(tmp_path, classes=("b",), mode="RGB", per_class=10)
    split = load_dataset(f"folder:{tmp_path}", seed=0)
    assert split.image_shape == (3, 8, 8)
    grey = split.train.x[split.train.y == 0]
    assert torch.equal(grey[:, 0], grey[:, 1]) and torch.equal(grey[:, 1], grey[:, 2])


def test_image_size_resizes_mixed_and_non_square_images(tmp_path):
    write_folder(tmp_path, classes=("a",), size=(8, 8))
    write_folder(tmp_path, classes=("b",), size=(12, 10))
    split = load_dataset(f"folder:{tmp_path}", seed=0, image_size=16)
    assert split.image_shape == (1, 16, 16)


def test_split_is_deterministic_and_fingerprint_tracks_the_files(tmp_path):
    arrays = write_folder(tmp_path)
    a, b = load_dataset(f"folder:{tmp_path}", seed=0), load_dataset(f"folder:{tmp_path}", seed=0)
    assert torch.equal(a.train.x, b.train.x) and a.fingerprint == b.fingerprint and len(a.fingerprint) == 16
    path = next(iter(arrays))
    Image.fromarray(255 - arrays[path], "L").save(path)
    assert load_dataset(f"folder:{tmp_path}", seed=0).fingerprint != a.fingerprint


@pytest.mark.parametrize("make, match", [
    (lambda r: write_folder(r, classes=("only",)), "found one class"),
    (lambda r: (write_folder(r, classes=("a",)), write_folder(r, classes=("b",), size=(10, 10))),
     r"images have mixed sizes \(8x8 in .*, 10x10 in .*\); pass image_size=N \(--image-size N\)"),
    (lambda r: write_folder(r, size=(10, 8)), "the models take square images"),
    (lambda r: None, "the folder is empty"),
    (lambda r: (write_folder(r, classes=("a",)), (r / "b").mkdir()), "class folder 'b' has no images"),
    (lambda r: (write_folder(r), (r / "cat" / "broken.png").write_bytes(b"not a png")), "broken.png is not a readable"),
    (lambda r: write_folder(r, per_class=3), "too few for the attacker train / test / defender parts"),
])
def test_bad_folders_name_the_dataset(tmp_path, make, match):
    root = tmp_path / "imgs"
    root.mkdir()
    make(root)
    with pytest.raises(ValueError, match=match) as err:
        load_dataset(f"folder:{root}", seed=0)
    assert f"dataset='folder:{root}'" in str(err.value)


def test_missing_path_and_misuse(tmp_path):
    with pytest.raises(ValueError, match="dataset='folder:.*nowhere': the folder does not exist"):
        load_dataset(f"folder:{tmp_path / 'nowhere'}")
    with pytest.raises(ValueError, match="needs a path: folder:PATH"):
        load_dataset("folder")
    with pytest.raises(ValueError, match="image_size and parts apply to folder:PATH datasets only"):
        load_dataset("mnist5k", image_size=32)
    write_folder(tmp_path / "ok")
    with pytest.raises(ValueError, match="image_size must be an integer >= 1"):
        load_dataset(f"folder:{tmp_path / 'ok'}", image_size=0)
    with pytest.raises(ValueError, match="parts must be one of"):
        load_dataset(f"folder:{tmp_path / 'ok'}", parts="some")


def test_save_image_folder_round_trip(tmp_path):
    g = torch.Generator().manual_seed(0)
    x = (torch.randint(0, 256, (12, 3, 5, 5), generator=g).float() / 255)
    y = torch.arange(12) % 3
    files = save_image_folder(Data(x, y), tmp_path / "out", ("plane", "car", "bird"))
    assert len(files) == 12 and sorted(p.name for p in (tmp_path / "out").iterdir()) == ["0-plane", "1-car", "2-bird"]
    split = load_dataset(f"folder:{tmp_path / 'out'}", parts="defender")
    xs, ys = torch.cat([split.test.x, split.defender.x]), torch.cat([split.test.y, split.defender.y])
    order = sorted(range(12), key=lambda i: (int(ys[i]), xs[i].sum().item()))
    ref = sorted(range(12), key=lambda i: (int(y[i]), x[i].sum().item()))
    assert torch.allclose(xs[order], x[ref], atol=1e-6) and torch.equal(ys[order], y[ref])
    with pytest.raises(FileExistsError, match="writes into a new folder only"):
        save_image_folder(Data(x, y), tmp_path / "out", ("plane", "car", "bird"))


def test_files_that_are_not_images_are_skipped_with_a_count(tmp_path):
    write_folder(tmp_path)
    (tmp_path / "cat" / "notes.txt").write_text("not an image")
    (tmp_path / "dog" / "labels.csv").write_text("a,b")
    with pytest.warns(UserWarning, match=r"skipped 2 file\(s\) that are not images"):
        split = load_dataset(f"folder:{tmp_path}")
    assert len(split.train) + len(split.test) + len(split.defender) == 30
