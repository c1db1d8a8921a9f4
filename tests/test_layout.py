"""The channels-last context (unlearnlib.core.device.channels_last) and its benchmark (bench --layout)."""

import pytest
import torch

from unlearnlib.core.device import channels_last
from unlearnlib.models import build_model


def test_channels_last_keeps_values_and_restores_the_layout():
    torch.manual_seed(0)
    model = build_model("cnn", 1, 10, 28).eval()
    x = torch.rand(8, 1, 28, 28)
    ref = model(x)
    params = list(model.parameters())
    with channels_last(model):
        assert model.conv2.weight.is_contiguous(memory_format=torch.channels_last)
        assert not model.conv2.weight.is_contiguous()  # conv1 has one input channel: both layouts
        torch.testing.assert_close(model(x), ref, rtol=1e-5, atol=1e-5)
    assert model.conv2.weight.is_contiguous() and list(model.parameters()) == params  # same Parameter objects
    torch.testing.assert_close(model(x), ref)


def test_channels_last_leaves_models_without_4d_weights_or_already_nhwc_alone():
    mlp = build_model("mlp", 1, 10, 28)
    with channels_last(mlp):
        pass
    assert all(p.is_contiguous() for p in mlp.parameters())
    cnn = build_model("cnn", 1, 10, 28).to(memory_format=torch.channels_last)
    with channels_last(cnn):
        pass
    assert cnn.conv2.weight.is_contiguous(memory_format=torch.channels_last)  # the user's layout is kept


def test_training_returns_a_default_layout_model():
    from unlearnlib.data import Data
    from unlearnlib.ml.train import train

    g = torch.Generator().manual_seed(0)
    data = Data(torch.rand(64, 1, 28, 28, generator=g), torch.randint(0, 10, (64,), generator=g))
    model = train(build_model("cnn", 1, 10, 28), data, epochs=1, batch_size=32, device="cpu", progress=False)
    assert all(p.is_contiguous() for p in model.parameters())


def test_layout_bench_rows_and_errors(tmp_path):
    from unlearnlib.display.markdown import layout_markdown as to_markdown
    from unlearnlib.evaluation.channels_last import run_layout

    df = run_layout(["cnn"], train_batch=4, probe_batch=4, repeats=1, device="cpu")
    assert list(df["op"]) == ["train step", "grad to input", "forward"]
    assert (df["nchw_ms"] > 0).all() and (df["nhwc_ms"] > 0).all()
    assert "channels-last (ms)" in to_markdown(df)
    with pytest.raises(ValueError, match="models must be drawn from"):
        run_layout(["resnet999"], repeats=1)
    with pytest.raises(ValueError, match="repeats"):
        run_layout(["cnn"], repeats=0)


def test_a_strided_1x1_convolution_stays_nchw_on_the_cpu_and_its_backward_runs():
    """PyTorch 2.14.1 crashes (heap corruption) in the CPU backward of PreAct-ResNet18's 1x1 stride-2 shortcut with
    channels-last weights at a batch of 5: the context leaves such a model in NCHW. Run in a subprocess, so a crash
    is this test's failure and not the end of the test session."""
    import subprocess
    import sys

    from unlearnlib.core.device import nhwc_unsafe

    assert nhwc_unsafe(build_model("preact-resnet18-w8", 3, 10, 32)) and not nhwc_unsafe(build_model("cnn", 1, 10, 28))
    code = ("import torch\nfrom unlearnlib.core.device import channels_last\n"
            "from unlearnlib.models import build_model\n"
            "m = build_model('preact-resnet18-w8', 3, 10, 32).eval()\n"
            "for n in (3, 5):\n    with channels_last(m):\n        m(torch.rand(n, 3, 32, 32)).sum().backward()\n"
            "print('ok')")
    run = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert run.returncode == 0 and run.stdout.strip() == "ok", run.stderr[-500:]
