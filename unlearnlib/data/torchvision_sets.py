"""The torchvision data sets (MNIST, Fashion-MNIST, CIFAR-10, GTSRB): downloaded only when asked
(``download=True``); offline and not downloaded they fail with one message that names ``mnist5k``, which works
offline."""

from __future__ import annotations

import numpy as np
import torch

from ..core.registry import DATASETS
from .splits import Data, DatasetUnavailable, Split, data_root, from_parts


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
        return from_parts(name, tensors[0], test, defender, class_names)

    loader.__doc__ = (f"torchvision {ctor_name}: official train split; {n_defender} test images (at most half of "
                      "the test split, for smaller copies) form the defender pool.")
    return DATASETS.register(name)(loader)


_torchvision("mnist", "MNIST", tuple(str(i) for i in range(10)), 1000)
_torchvision("fashion-mnist", "FashionMNIST", ("T-shirt", "Trouser", "Pullover", "Dress", "Coat", "Sandal",
                                               "Shirt", "Sneaker", "Bag", "Boot"), 1000)
_torchvision("cifar10", "CIFAR10", ("plane", "car", "bird", "cat", "deer", "dog", "frog", "horse", "ship",
                                    "truck"), 1000)
_torchvision("gtsrb", "GTSRB", tuple(f"sign{i}" for i in range(43)), 2150)

