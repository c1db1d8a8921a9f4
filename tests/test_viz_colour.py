"""Images are drawn in their own channels: grey with the grey colormap, colour channels-last with no colormap."""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import pytest  # noqa: E402
import torch  # noqa: E402

from unlearnlib.attacks import make_trigger  # noqa: E402
from unlearnlib.display.images import imshow, trigger_gallery  # noqa: E402
from unlearnlib.display.recovery import plot_trigger_gallery  # noqa: E402


def test_colour_image_is_channels_last_without_colormap():
    fig, ax = plt.subplots()
    img = torch.rand(3, 8, 6)
    imshow(ax, img)
    arr = ax.images[0].get_array()
    assert arr.shape == (8, 6, 3) and torch.allclose(torch.as_tensor(arr), img.permute(1, 2, 0))
    plt.close(fig)


def test_grey_image_uses_the_grey_colormap_on_a_fixed_scale():
    fig, ax = plt.subplots()
    imshow(ax, torch.rand(1, 8, 8) * 0.5)
    im = ax.images[0]
    assert im.get_array().shape == (8, 8) and im.get_cmap().name == "gray" and im.get_clim() == (0, 1)
    plt.close(fig)


def test_bad_image_shape_is_refused():
    fig, ax = plt.subplots()
    with pytest.raises(ValueError, match="img must be"):
        imshow(ax, torch.rand(2, 8, 8))
    plt.close(fig)


def test_trigger_figures_draw_colour_triggers_in_colour():
    x = torch.rand(4, 3, 32, 32)
    trig = make_trigger("badnets", (3, 32, 32))
    for fig in (trigger_gallery(x, {"BadNets": trig}), plot_trigger_gallery(x, trig, {"same": trig}, n=3)):
        shapes = {im.get_array().shape for ax in fig.axes for im in ax.images}
        assert shapes == {(32, 32, 3)}, shapes
        plt.close(fig)


def test_glue_percents_glues_each_metric_in_percent(monkeypatch):
    import myst_nb

    from unlearnlib.display import images as viz

    got = {}
    monkeypatch.setattr(myst_nb, "glue", lambda name, value, display=True: got.update({name: (value, display)}))
    viz.glue_percents("ch00_", {"acc": 0.98765, "asr": 0.0123, "target_acc": 1.0, "ra": 0.5}, suffix="_after")
    assert got == {"ch00_acc_after": (98.77, False), "ch00_asr_after": (1.23, False),
                   "ch00_target_acc_after": (100.0, False)}
    with pytest.raises(ValueError, match="metrics: no \\['target_acc'\\]"):
        viz.glue_percents("ch00_", {"acc": 0.9, "asr": 0.1})
