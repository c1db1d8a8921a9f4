import pytest
import torch
from torch import nn

from unlearnlib.core.device import resolve_device
from unlearnlib.data import load_dataset
from unlearnlib.ml.train import DivergenceError, descend, random_crop_flip, train
from unlearnlib.models import build_model, get_layer, max_pool2


@pytest.mark.parametrize("name, shape", [("cnn", (1, 28, 28)), ("preact-resnet18", (3, 32, 32)),
                                         ("preact-resnet18-w8", (3, 32, 32)), ("preact-resnet18-w4", (3, 32, 32))])
def test_models_map_images_to_logits(name, shape):
    m = build_model(name, shape[0], 10, shape[1]).eval()
    assert m(torch.rand(2, *shape)).shape == (2, 10)
    assert isinstance(get_layer(m, m.edit_layer), nn.Linear) and isinstance(get_layer(m, m.last_conv), nn.Conv2d)


def test_the_narrow_preact_resnets_keep_the_full_networks_layers_at_a_fraction_of_the_width():
    """The smoke profile's model is the full profile's architecture, narrower: same layer names, stage widths
    4-8-16-32 (1/16) and 8-16-32-64 (1/8) instead of 64-128-256-512."""
    full = build_model("preact-resnet18", 3, 10, 32)
    for name, width in (("preact-resnet18-w8", 8), ("preact-resnet18-w4", 4)):
        m = build_model(name, 3, 10, 32)
        assert [n for n, _ in m.named_modules()] == [n for n, _ in full.named_modules()]
        assert [m.conv1.out_channels, m.layer4[1].conv2.out_channels, m.linear.in_features] == [width, 8 * width,
                                                                                                 8 * width]


@pytest.mark.parametrize("hw", [(28, 28), (7, 9)])
def test_max_pool2_matches_max_pool2d(hw):
    x = torch.randn(3, 4, *hw)
    ref = torch.nn.functional.max_pool2d(x, 2)
    with torch.no_grad():
        fast = max_pool2(x)  # the strided-maxima path
    xg = x.clone().requires_grad_()
    assert torch.equal(fast, ref) and torch.equal(max_pool2(xg), ref)  # both paths: the same values and shape
    assert max_pool2(xg).requires_grad


def test_unknown_model_and_layer_names():
    with pytest.raises(ValueError, match="model='vgg' is not known; expected one of: cnn"):
        build_model("vgg", 1, 10, 28)
    with pytest.raises(ValueError, match="layer='fc9' is not a layer of SmallCNN; Linear/Conv2d layers are: conv1"):
        get_layer(build_model("cnn", 1, 10, 28), "fc9")


def test_training_is_deterministic_on_cpu_and_learns():
    part = load_dataset("mnist5k", 0).train.take(400, 0)
    models = []
    for _ in range(2):
        torch.manual_seed(0)
        m = build_model("cnn", 1, 10, 28)
        models.append(train(m, part, epochs=5, batch_size=32, lr=2e-3, device="cpu", seed=1, progress=False))
    a, b = (dict(m.state_dict()) for m in models)
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert not models[0].training
    acc = (models[0](part.x).argmax(1) == part.y).float().mean()
    assert acc > 0.8


def test_train_bad_input():
    part = load_dataset("mnist5k", 0).train.take(20, 0)
    m = build_model("cnn", 1, 10, 28)
    with pytest.raises(ValueError, match="epochs must be"):
        train(m, part, epochs=0)
    with pytest.raises(ValueError, match="optimizer must be"):
        train(m, part, optimizer="lbfgs")
    with pytest.raises(TypeError, match="model must be a torch.nn.Module"):
        train("model", part)


def test_device_resolution():
    assert resolve_device("auto").type in ("cpu", "cuda")
    assert resolve_device("cpu").type == "cpu"
    with pytest.raises(ValueError, match="device must be"):
        resolve_device("tpu9")


def test_random_crop_flip_keeps_shape():
    x = torch.rand(5, 3, 32, 32)
    assert random_crop_flip(x).shape == x.shape


def test_descend_steps_on_a_finite_loss_and_refuses_a_nan_one():
    layer = nn.Linear(3, 1)
    opt = torch.optim.SGD(layer.parameters(), lr=0.1)
    before = layer.weight.detach().clone()
    descend(opt, layer(torch.ones(2, 3)).sum(), "toy", "lower lr")
    assert not torch.equal(layer.weight, before)
    after = layer.weight.detach().clone()
    with pytest.raises(DivergenceError, match=r"^toy at step 3 diverged \(loss=nan\); lower lr \(now 0.1\)"):
        descend(opt, layer(torch.ones(2, 3)).sum() * float("nan"), "toy at step 3", "lower lr (now 0.1)")
    assert torch.equal(layer.weight, after)  # nothing was applied
