"""Live controls for a running kernel (Colab, Jupyter). The rendered book shows a static figure beside them."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import matplotlib.pyplot as plt
import torch
from torch import nn

from .attacks import make_trigger
from .metrics import logits


def trigger_explorer(models: Mapping[str, nn.Module], x: torch.Tensor, class_names: Sequence[str],
                     badnets_params: Mapping[str, object] | None = None,
                     blended_params: Mapping[str, object] | None = None):
    """Pick an image, an attack and its strength (patch size or blend weight): see the triggered image and the
    class probabilities of each model (``models[attack]`` is that attack's backdoored model; ``models["clean"]``
    is drawn in grey beside it)."""
    import ipywidgets as W

    attack = W.ToggleButtons(options=["badnets", "blended"], description="attack")
    index = W.IntSlider(0, 0, len(x) - 1, description="image")
    size = W.IntSlider(3, 1, 8, description="patch size")
    alpha = W.FloatSlider(0.2, min=0.0, max=0.6, step=0.02, description="blend α")
    out = W.Output()

    def draw(*_: object) -> None:
        shape = tuple(x.shape[1:])
        if attack.value == "badnets":
            trig = make_trigger("badnets", shape, **{**(badnets_params or {}), "size": size.value})
        else:
            trig = make_trigger("blended", shape, **{**(blended_params or {}), "alpha": max(alpha.value, 1e-3)})
        xt = trig.apply(x[index.value:index.value + 1])
        fig, (a0, a1) = plt.subplots(1, 2, figsize=(6.5, 2.4), gridspec_kw={"width_ratios": [1, 2.2]})
        a0.imshow(xt[0].permute(1, 2, 0).squeeze(-1), cmap="gray", vmin=0, vmax=1)
        a0.axis("off")
        ks = range(len(class_names))
        for name, colour, off in ((attack.value, "tab:red", 0.2), ("clean", "tab:gray", -0.2)):
            p = logits(models[name], xt).softmax(1)[0]
            a1.bar([k + off for k in ks], p, width=0.4, color=colour, label=f"{name}: {class_names[int(p.argmax())]}")
        a1.set_xticks(list(ks), class_names)
        a1.set_ylim(0, 1)
        a1.set_ylabel("probability")
        a1.legend(fontsize=8)
        fig.tight_layout()
        with out:
            out.clear_output(wait=True)
            plt.show()
        plt.close(fig)

    for w in (attack, index, size, alpha):
        w.observe(draw, names="value")
    draw()
    return W.VBox([W.HBox([attack, index]), W.HBox([size, alpha]), out])
