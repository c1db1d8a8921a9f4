"""Small, deterministic fixture files in the exact on-disk formats the torchvision loaders read.

Each writer lays out what torchvision's dataset class expects under ``root`` (the folder that
:func:`unlearnlib.data.data_root` returns, i.e. ``$UNLEARNLIB_DATA``) and returns the images and labels it wrote,
so a test can compare what the real loader reads back with what was written:

- CIFAR-10: ``cifar-10-batches-py/data_batch_1..5``, ``test_batch`` (Python 2 pickles, protocol 2, of dicts with
  ``b"data"`` -- a uint8 array of rows of 3,072 values, channel-major -- and ``b"labels"``) and ``batches.meta``
  (``b"label_names"``);
- MNIST / Fashion-MNIST: the four uncompressed IDX files ``{train,t10k}-{images-idx3,labels-idx1}-ubyte`` under
  ``MNIST/raw`` or ``FashionMNIST/raw`` (big-endian magic ``0x0803`` / ``0x0801`` and dimensions);
- GTSRB: ``gtsrb/GTSRB/Training/000CC/*.ppm`` (one folder per class, with its ``GT-000CC.csv``) and
  ``gtsrb/GTSRB/Final_Test/Images/*.ppm`` listed with their ``ClassId`` in ``gtsrb/GT-final_test.csv``
  (``;``-separated).

Integrity checks: CIFAR-10 verifies the md5 of every batch file and of ``batches.meta`` against constants of the
class; :func:`cifar10_md5s` gives the fixture's digests for a test to monkeypatch into ``CIFAR10.train_list``,
``test_list`` and ``meta`` (the test's class attributes only; the library never disables a check). MNIST's
``_check_exists`` only checks that the raw files exist and GTSRB's that the folder exists, so their fixtures pass
the real checks as written.
"""

from __future__ import annotations

import hashlib
import io
import pickle
import struct
from pathlib import Path

import numpy as np
from PIL import Image

CIFAR_FOLDER = "cifar-10-batches-py"
CIFAR_CLASSES = ["airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck"]


def _images(n: int, shape: tuple[int, ...], classes: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """``n`` uint8 images of ``shape`` whose mean brightness depends on the label, and their labels (every class
    present once ``n >= classes``)."""
    rng = np.random.default_rng(seed)
    labels = np.arange(n) % classes
    rng.shuffle(labels)
    base = (labels * (200 // max(classes - 1, 1))).reshape((-1,) + (1,) * len(shape))
    noise = rng.integers(0, 56, size=(n, *shape))
    return (base + noise).astype(np.uint8), labels.astype(np.int64)


class _Py2Pickler(pickle._Pickler):  # type: ignore[misc,name-defined]
    """Pickles ``bytes`` as Python 2 ``str`` (the BINSTRING opcodes), as the real CIFAR-10 batches were written:
    torchvision reads them with ``encoding="latin1"``, which turns those keys into ``"data"``/``"labels"``
    (``encoding="bytes"`` gives ``b"data"``); a Python 3 ``bytes`` key would stay ``b"data"`` and not be found."""

    dispatch = pickle._Pickler.dispatch.copy()  # type: ignore[attr-defined]

    def save_py2_str(self, obj: bytes) -> None:
        n = len(obj)
        self.write((b"U" + bytes([n]) if n < 256 else b"T" + struct.pack("<I", n)) + obj)
        self.memoize(obj)

    dispatch[bytes] = save_py2_str


def _py2_pickle(obj: object) -> bytes:
    buf = io.BytesIO()
    _Py2Pickler(buf, protocol=2).dump(obj)
    return buf.getvalue()


def write_cifar10(root: Path, per_batch: int = 60, n_test: int = 100, seed: int = 0) -> dict[str, np.ndarray]:
    """Five training batches of ``per_batch`` images and one test batch of ``n_test``: returns the images as
    ``(N, 32, 32, 3)`` uint8 (torchvision's ``.data`` layout) and the labels, for ``train`` and ``test``."""
    folder = Path(root) / CIFAR_FOLDER
    folder.mkdir(parents=True, exist_ok=True)
    out: dict[str, np.ndarray] = {}
    parts = {f"data_batch_{i}": per_batch for i in range(1, 6)} | {"test_batch": n_test}
    train_x, train_y = [], []
    for i, (name, n) in enumerate(parts.items()):
        x, y = _images(n, (3, 32, 32), 10, seed + i)
        entry = {b"batch_label": name.encode(), b"labels": y.tolist(), b"data": x.reshape(n, -1),
                 b"filenames": [f"{name}_{j}.png".encode() for j in range(n)]}
        (folder / name).write_bytes(_py2_pickle(entry))
        hwc = x.transpose(0, 2, 3, 1)
        if name == "test_batch":
            out["test_x"], out["test_y"] = hwc, y
        else:
            train_x.append(hwc)
            train_y.append(y)
    meta = {b"label_names": [c.encode() for c in CIFAR_CLASSES], b"num_cases_per_batch": per_batch,
            b"num_vis": 3072}
    (folder / "batches.meta").write_bytes(_py2_pickle(meta))
    out["train_x"], out["train_y"] = np.concatenate(train_x), np.concatenate(train_y)
    return out


def md5(path: Path) -> str:
    return hashlib.md5(Path(path).read_bytes()).hexdigest()


def cifar10_md5s(root: Path) -> dict[str, object]:
    """The fixture's digests in the shape of ``CIFAR10.train_list``, ``test_list`` and ``meta``."""
    folder = Path(root) / CIFAR_FOLDER
    return {
        "train_list": [[f"data_batch_{i}", md5(folder / f"data_batch_{i}")] for i in range(1, 6)],
        "test_list": [["test_batch", md5(folder / "test_batch")]],
        "meta": {"filename": "batches.meta", "key": "label_names", "md5": md5(folder / "batches.meta")},
    }


def _idx(path: Path, array: np.ndarray) -> None:
    """An uncompressed IDX file of unsigned bytes: magic ``0x08`` (ubyte) and the number of dimensions, then each
    dimension as a big-endian int32, then the data."""
    header = struct.pack(">HBB", 0, 0x08, array.ndim) + struct.pack(f">{array.ndim}I", *array.shape)
    path.write_bytes(header + np.ascontiguousarray(array, dtype=np.uint8).tobytes())


def write_mnist(root: Path, folder: str = "MNIST", n_train: int = 300, n_test: int = 200,
                seed: int = 0) -> dict[str, np.ndarray]:
    """The four IDX files of MNIST (``folder="MNIST"``) or Fashion-MNIST (``"FashionMNIST"``) under
    ``root/folder/raw``: returns ``(N, 28, 28)`` uint8 images and labels for ``train`` and ``test``."""
    raw = Path(root) / folder / "raw"
    raw.mkdir(parents=True, exist_ok=True)
    out: dict[str, np.ndarray] = {}
    for i, (prefix, part, n) in enumerate((("train", "train", n_train), ("t10k", "test", n_test))):
        x, y = _images(n, (28, 28), 10, seed + 10 + i)
        _idx(raw / f"{prefix}-images-idx3-ubyte", x)
        _idx(raw / f"{prefix}-labels-idx1-ubyte", y.astype(np.uint8))
        out[f"{part}_x"], out[f"{part}_y"] = x, y
    return out


GTSRB_CLASSES = 43


def write_gtsrb(root: Path, per_class: int = 5, n_test: int = 120, seed: int = 0) -> dict[str, np.ndarray]:
    """GTSRB's training folders (``per_class`` .ppm images for each of the 43 classes, sizes varying like the real
    crops) and test images with their CSV: returns the labels of ``train`` (in torchvision's order: class folder,
    then file name) and ``test`` (CSV order), and the first test image's pixels (``test_first``)."""
    base = Path(root) / "gtsrb"
    rng = np.random.default_rng(seed)
    train_y = []
    for c in range(GTSRB_CLASSES):
        cls = base / "GTSRB" / "Training" / f"{c:05d}"
        cls.mkdir(parents=True, exist_ok=True)
        rows = ["Filename;Width;Height;Roi.X1;Roi.Y1;Roi.X2;Roi.Y2;ClassId"]
        for j in range(per_class):
            side = int(rng.integers(29, 48))
            x, _ = _images(1, (side, side, 3), 1, seed + 1000 * c + j)
            name = f"00000_{j:05d}.ppm"
            Image.fromarray(x[0], "RGB").save(cls / name)
            rows.append(f"{name};{side};{side};5;5;{side - 5};{side - 5};{c}")
            train_y.append(c)
        (cls / f"GT-{c:05d}.csv").write_text("\n".join(rows) + "\n")
    test_dir = base / "GTSRB" / "Final_Test" / "Images"
    test_dir.mkdir(parents=True, exist_ok=True)
    test_y = np.arange(n_test) % GTSRB_CLASSES
    rng.shuffle(test_y)
    rows = ["Filename;Width;Height;Roi.X1;Roi.Y1;Roi.X2;Roi.Y2;ClassId"]
    first = None
    for j, c in enumerate(test_y):
        side = int(rng.integers(29, 48))
        x, _ = _images(1, (side, side, 3), 1, seed + 7 + j)
        Image.fromarray(x[0], "RGB").save(test_dir / f"{j:05d}.ppm")
        rows.append(f"{j:05d}.ppm;{side};{side};5;5;{side - 5};{side - 5};{int(c)}")
        first = x[0] if first is None else first
    (base / "GT-final_test.csv").write_text("\n".join(rows) + "\n")
    return {"train_y": np.array(train_y), "test_y": test_y.astype(np.int64), "test_first": first}
