"""Live controls for a running kernel (Colab, Jupyter). The rendered book shows a static figure beside them."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import matplotlib.pyplot as plt
import torch
from torch import nn

from ..attacks import make_trigger
from ..core.registry import ATTACKS, DEFENSES
from ..defenses import get_defense
from ..experiment.studies import play
from ..ml.metrics import logits
from . import style
from .images import imshow, plot_before_after
from .text import format_record

LIVE_NOTE = ("<div class=\"admonition note live-control\"><p class=\"admonition-title\">Live control</p>"
             "<p>{what} It needs a running Python kernel: launch this chapter in Colab (the badge under the title) "
             "or open it in Jupyter. The static figures of this page show what it computes.</p></div>")


def live(box: Any, what: str) -> Any:
    """``box`` (an ipywidgets VBox) that also carries a static note for places without a kernel.

    A live front end (Jupyter, Colab) renders the widget view; the rendered book prefers the note's ``text/html``
    (``nb_mime_priority_overrides`` in ``_config.yml``), so a reader sees what the empty control would have been.
    """
    import ipywidgets as W

    class LiveBox(W.VBox):
        def _repr_mimebundle_(self, **kwargs: Any) -> dict[str, Any] | None:
            data = super()._repr_mimebundle_(**kwargs)
            return None if data is None else {**data, "text/html": LIVE_NOTE.format(what=what)}

    return LiveBox(list(box.children), layout=box.layout)


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
        imshow(a0, xt[0])
        ks = range(len(class_names))
        for name, colour, off in ((attack.value, style.ROLE["backdoored"], 0.2), ("clean", style.ROLE["clean"], -0.2)):
            p = logits(models[name], xt).softmax(1)[0]
            a1.bar([k + off for k in ks], p, width=0.4, color=colour, label=f"{name}: {class_names[int(p.argmax())]}")
        a1.set_xticks(list(ks), class_names)
        a1.set_ylim(0, 1)
        a1.set_ylabel("probability")
        a1.legend()
        fig.tight_layout()
        with out:
            out.clear_output(wait=True)
            plt.show()
        plt.close(fig)

    for w in (attack, index, size, alpha):
        w.observe(draw, names="value")
    draw()
    return live(W.VBox([W.HBox([attack, index]), W.HBox([size, alpha]), out]),
                "Pick an image, an attack and its strength, and see the triggered image and each model's class "
                "probabilities.")


def playground(profile: str = "quick"):
    """Controls for attack, defense and their main parameters; 'Run' trains (or loads) and defends live."""
    import ipywidgets as W
    from IPython.display import display

    attack = W.Dropdown(options=ATTACKS.names(), value="badnets", description="attack")
    size = W.IntSlider(3, min=1, max=6, description="patch size")
    alpha = W.FloatSlider(0.2, min=0.05, max=0.4, step=0.05, description="blend α")
    ratio = W.FloatSlider(0.1, min=0.01, max=0.3, step=0.01, description="poison ratio")
    defense = W.Dropdown(options=[d for d in DEFENSES.names() if d != "none"], description="defense")
    unseen = W.IntSlider(10, min=1, max=500, description="unseen N")
    seed = W.BoundedIntText(0, min=0, max=99, description="seed")
    button = W.Button(description="Run", button_style="primary", icon="play")
    out = W.Output()

    def on_attack(*_: object) -> None:
        size.layout.display = None if attack.value == "badnets" else "none"
        alpha.layout.display = None if attack.value == "blended" else "none"

    def on_defense(*_: object) -> None:
        unseen.value = max(1, get_defense(defense.value).default_unseen)

    def on_run(*_: object) -> None:
        with out:
            out.clear_output(wait=True)
            value = {"badnets": size.value, "blended": alpha.value}.get(attack.value)
            run = play(profile, attack.value, value, ratio.value, defense.value, unseen.value, seed.value, True)
            print(format_record(run.record))
            display(plot_before_after(run.record))
            plt.close("all")

    attack.observe(on_attack, names="value")
    defense.observe(on_defense, names="value")
    button.on_click(on_run)
    on_attack()
    on_defense()
    return live(W.VBox([W.HBox([attack, size, alpha, ratio]), W.HBox([defense, unseen, seed]), button, out]),
                "Choose an attack, its strength and poison ratio, a defense and its unseen samples, and press Run "
                "to train (or load) and defend.")
