"""The data set and the one split object: attacker train / clean test / defender pool (METHODS.md, Data splits),
and :func:`load_dataset`, which builds a registered data set's split."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import torch

from ..core.cache import cache_dir
from ..core.checks import check_fraction, check_images, check_labels, check_positive_int
from ..core.registry import DATASETS


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
    fingerprint: str = ""  # a hash of the files' contents, for data read from the user's disk (model cache key)

    @property
    def image_shape(self) -> tuple[int, int, int]:
        return tuple(self.train.x.shape[1:])  # type: ignore[return-value]


class DatasetUnavailable(RuntimeError):
    """A torchvision dataset could not be loaded (typically: offline and not downloaded)."""


def data_root() -> Path:
    """Where torchvision datasets live: ``$UNLEARNLIB_DATA`` or ``<cache>/data``."""
    return Path(os.environ.get("UNLEARNLIB_DATA", cache_dir() / "data"))


def load_dataset(name: str = "mnist5k", seed: int = 0, download: bool = False, *, image_size: int | None = None,
                 parts: str = "all") -> Split:
    """Load a registered dataset and split it, stratified and fixed by ``seed``.

    ``name`` is a registered name or ``folder:PATH`` (your own images, :mod:`unlearnlib.data.folder`), which
    alone takes ``image_size`` (resize to N x N) and ``parts`` (``"defender"``: no attacker part).
    """
    kind, _, path = name.partition(":") if isinstance(name, str) else (name, "", "")
    if kind == "folder":
        return DATASETS.get("folder")(path=path, seed=seed, image_size=image_size, parts=parts)
    if image_size is not None or parts != "all":
        raise ValueError(f"image_size and parts apply to folder:PATH datasets only, not dataset={name!r}")
    return DATASETS.get(name)(seed=seed, download=download)


def from_parts(name: str, train: Data, test: Data, defender: Data, class_names: tuple[str, ...]) -> Split:
    """The :class:`Split` of three parts, its class count from ``class_names``."""
    return Split(name, train, test, defender, len(class_names), class_names)

