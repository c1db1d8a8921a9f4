"""The warp kind of trigger recovery: the smooth flow, the generator, batching, a recovered warp backdoor, errors."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from unlearnlib.core.device import cpu_threads
from unlearnlib.data import Data
from unlearnlib.defenses import get_defense
from unlearnlib.recovery import target_search as ts
from unlearnlib.recovery.generated import GeneratedTrigger, flow_field, warp_smooth
from unlearnlib.recovery.mesa import Job, TriggerGenerator, train_generators

ATOL = 1e-4  # batched against lone jobs: float32 rounding (tests/test_recover_batched.py says why)


@pytest.fixture(autouse=True)
def one_thread():
    with cpu_threads(1):
        yield


class ShiftNet(nn.Module):
    """Every image has a bright line in column 4; classes 0 and 1 from the background's brightness; class 2 fires
    when column 5 is bright, which a warp moving the image rightwards by a pixel does: a planted warp backdoor."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        m = x.mean((1, 2, 3))
        clean = torch.stack([-(m - 0.15).abs(), -(m - 0.25).abs(), torch.full_like(m, -0.3)], 1) * 20
        return clean + 60 * torch.relu(x[:, 0, :, 5].mean(1) - 0.5).unsqueeze(1) * torch.tensor([0.0, 0.0, 1.0])


def shift_data(n: int = 48) -> torch.Tensor:
    g = torch.Generator().manual_seed(0)
    x = 0.2 * torch.rand(n, 1, 10, 10, generator=g)
    x[..., 4] = 1.0
    return x


def test_a_still_flow_is_the_identity_and_a_uniform_one_shifts_by_whole_pixels():
    x = torch.rand(2, 1, 8, 8)
    assert torch.allclose(warp_smooth(x, torch.full((2, 2, 4, 4), 0.5), 1.5), x, atol=1e-5)
    right = torch.zeros(2, 2, 4, 4)
    right[:, 1] = 0.5  # dx = -1 px everywhere (each pixel samples its left neighbour), dy = 0
    out = warp_smooth(x, right, 1.0)
    assert torch.allclose(out[..., 1:], x[..., :-1], atol=1e-5)
    assert torch.allclose(out[..., 0], x[..., 0])  # the sampling grid is clamped to the image, as WaNet's


def test_the_flow_stays_within_its_bound_at_the_control_points():
    control = torch.rand(3, 2, 4, 4)
    flow = flow_field(control, 1.5, (10, 10))
    assert flow.shape == (3, 2, 10, 10)
    corners = flow[..., [0, 0, -1, -1], [0, -1, 0, -1]]
    assert corners.abs().max() <= 1.5 + 1e-6 and torch.allclose(corners, ((2 * control - 1) * 1.5)[..., [0, 0, -1, -1],
                                                                                                    [0, -1, 0, -1]])


def test_a_warp_generator_emits_control_points_and_its_trigger_a_flow():
    g = TriggerGenerator((1, 10, 10), None, hidden=16, warp_grid=4).eval()
    assert g.kind == "warp" and not g.blend and g(torch.rand(5, 64)).shape == (5, 2, 4, 4)
    trig = GeneratedTrigger(g, seed=3, target=2)
    x = shift_data(6)
    assert torch.equal(trig.apply(x), trig.apply(x)) and trig.apply(x).shape == x.shape
    assert trig.kind == "warp" and trig.flow.shape == (2, 10, 10) and repr(trig) == "GeneratedTrigger(warp 4, target=2)"
    with pytest.raises(ValueError, match="flow field"):
        trig.examples(2)
    with pytest.raises(ValueError, match="blend_weight"):
        g.blend_weight()
    with pytest.raises(ValueError, match="only a warp trigger has a flow"):
        _ = GeneratedTrigger(TriggerGenerator((1, 10, 10), 3, hidden=8)).flow


def test_a_planted_warp_is_recovered_and_batches_like_the_job_alone():
    model, x = ShiftNet(), shift_data()
    jobs = [Job(c, None, seed=20 + c, warp_grid=4) for c in range(3)]
    kw = dict(hidden=16, lr=2e-2, steps=30, batch_size=16, progress=False)
    trained = train_generators(model, x, jobs, **kw)
    (alone, hist), = train_generators(model, x, [jobs[2]], **kw)
    # the same steps batched as alone (the first ten: a steep backdoor amplifies float rounding after that)
    assert trained[2][1]["hinge"][:10] == pytest.approx(hist["hinge"][:10], abs=ATOL)
    clean = Data(x, model(x).argmax(1))
    assert set(clean.y.tolist()) == {0, 1}
    rates = ts.proxy_rates(model, [t for t, _ in trained], clean, [0, 1, 2])
    assert rates[2] > 0.8 and hist["asr"][0] < 0.5  # the warp found the backdoor it did not start on
    assert float(alone.flow[0].mean()) < -0.5  # and it moves the image rightwards (each pixel samples leftwards)


def test_mixed_kinds_with_a_warp_batch_like_separate_calls():
    model, x = ShiftNet(), shift_data()
    jobs = [Job(2, 2, seed=3), Job(2, None, seed=3), Job(2, None, seed=3, warp_grid=3)]
    kw = dict(hidden=16, lr=1e-2, steps=4, batch_size=8, progress=False)
    both = train_generators(model, x, jobs, **kw)
    for job, (_, hist) in zip(jobs, both):
        assert hist["hinge"] == pytest.approx(train_generators(model, x, [job], **kw)[0][1]["hinge"], abs=ATOL)


def test_the_search_and_the_finals_include_the_warp():
    assert ts.KINDS[-1] == "warp" and ts.variants(ts.KINDS, (3, 6))[-1] == ("warp", None)
    assert ts.kind_job("warp", 3, 1, 7, 0.5) == Job(1, None, 7, 0.5, ts.WARP_GRID)
    assert ts.kind_job("patch", 3, 1, 7, 0.5) == Job(1, 3, 7, 0.5)


def test_bad_warp_arguments_name_the_parameter():
    with pytest.raises(ValueError, match="^a warp generator has no patch"):
        TriggerGenerator((1, 10, 10), 3, warp_grid=4)
    with pytest.raises(ValueError, match="^warp_grid must be"):
        TriggerGenerator((1, 10, 10), None, warp_grid=1)
    with pytest.raises(ValueError, match="^warp_grid must fit"):
        TriggerGenerator((1, 10, 10), None, warp_grid=11)
    with pytest.raises(ValueError, match="^max_warp must be"):
        train_generators(ShiftNet(), shift_data(), [Job(0, None, 0, warp_grid=4)], steps=1, max_warp=0.0)
    with pytest.raises(ValueError, match="^a job is a patch or a warp"):
        train_generators(ShiftNet(), shift_data(), [Job(0, 2, 0, warp_grid=4)], steps=1)
    with pytest.raises(ValueError, match="^max_warp must be"):
        get_defense("baerase", max_warp=-1.0)
