"""Layer 1, models: the model registry, one file per architecture, each registering itself in
:data:`~unlearnlib.core.registry.MODELS`. Imports only :mod:`unlearnlib.core`.

======================  ===================  =======================
model                   last conv layer      default edited layer
======================  ===================  =======================
``cnn``                 ``conv2``            ``fc1``
``preact-resnet18``     ``layer4.1.conv2``   ``linear``
``preact-resnet18-w8``  ``layer4.1.conv2``   ``linear``
``preact-resnet18-w4``  ``layer4.1.conv2``   ``linear``
``lenet5``, ``mlp``,    (generic rules: :func:`~.base.last_conv_name`,
``small-bn``            :func:`unlearnlib.ml.edit.default_edit_layer`)
======================  ===================  =======================
"""

from ..core.registry import import_members
from .base import build_model, get_layer, last_conv_name, max_pool2

import_members(__name__, __path__, skip=("base",))

__all__ = ["build_model", "get_layer", "last_conv_name", "max_pool2"]
