"""Layer 1, data: the data set and split objects (:mod:`.splits`) and one file per registered data set, each
registering itself in :data:`~unlearnlib.core.registry.DATASETS` (``mnist5k``, the torchvision sets, ``synth32``,
``folder:PATH``). Imports only :mod:`unlearnlib.core`."""

from ..core.registry import import_members
from .folder import save_image_folder
from .splits import Data, DatasetUnavailable, Split, data_root, load_dataset, stratified_order

import_members(__name__, __path__, skip=("splits",))

__all__ = ["Data", "DatasetUnavailable", "Split", "data_root", "load_dataset", "save_image_folder",
           "stratified_order"]
