"""The batched generator training (one stacked model for all jobs) against the one-job-at-a-time reference."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from unlearnlib.core.device import cpu_threads
from unlearnlib.core.memo import RecoveryMemo, fingerprint, sharing
from unlearnlib.data import Data
from unlearnlib.recovery.anomaly import anomaly_index
from unlearnlib.recovery.mesa import Job, TriggerGenerator, position_heatmaps, train_generators
from unlearnlib.recovery.stacked import Stack
from unlearnlib.recovery.target_search import proxy_rate, proxy_rates, recover, search_target

# Tolerances: the batched and the lone job run the same arithmetic in another order (batched matrix products), so
# losses agree to float32 rounding. The generators' Linear biases in front of BatchNorm have a zero true gradient:
# Adam turns their rounding noise into steps of size ~lr, which BatchNorm cancels in training mode and which reach
# the eval-mode outputs only through the running mean (1e-3 here).
ATOL = 1e-4
OUT_ATOL = 2e-3


@pytest.fixture(autouse=True)
def one_thread():
    with cpu_threads(1):
        yield


def backdoored_tiny(seed: int = 0) -> tuple[nn.Module, Data]:
    """A 3-class model that answers class 2 whenever the top-left 2x2 corner is bright: a planted backdoor."""
    torch.manual_seed(seed)
    g = torch.Generator().manual_seed(seed)
    x = torch.rand(60, 1, 10, 10, generator=g) * 0.5
    y = torch.arange(60) % 3
    x[y == 0, :, 5:, :] += 0.4  # three learnable clean classes
    x[y == 1, :, :, 5:] += 0.4

    class Net(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.conv = nn.Conv2d(1, 4, 3, padding=1)
            self.fc = nn.Linear(4 * 25, 3)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            h = torch.relu(self.conv(x))
            out = self.fc(nn.functional.avg_pool2d(h, 2).flatten(1))
            corner = x[:, 0, :2, :2].mean((1, 2))
            return out + 30 * torch.relu(corner - 0.8).unsqueeze(1) * torch.tensor([0.0, 0.0, 1.0])

    return Net().eval(), Data(x.clamp(0, 1), y)


def test_stack_runs_each_copy_as_the_copy_alone():
    mods = [TriggerGenerator((1, 8, 8), 3, hidden=16) for _ in range(3)]
    z = torch.rand(3, 5, 64)
    stack = Stack(mods)
    out = stack(z, train=False)
    ref = torch.stack([m.eval()(z[i]) for i, m in enumerate(mods)])
    assert torch.allclose(out, ref, atol=1e-6)


@pytest.mark.parametrize("patch_size", [2, None])
def test_batched_jobs_train_as_each_job_alone(patch_size):
    model, data = backdoored_tiny()
    jobs = [Job(c, patch_size, seed=10 + c) for c in range(3)]
    kw = dict(hidden=16, lr=1e-2, steps=6, batch_size=8, positions="adaptive", progress=False)
    batched = train_generators(model, data.x, jobs, **kw)
    for job, (trig, hist) in zip(jobs, batched):
        (alone, hist1), = train_generators(model, data.x, [job], **kw)
        for key in ("hinge", "mi", "asr"):
            assert hist[key] == pytest.approx(hist1[key], abs=ATOL), key
        x = data.x[:12]
        assert torch.allclose(trig.apply(x), alone.apply(x), atol=OUT_ATOL)
        if patch_size is not None:
            assert torch.allclose(trig.position_probs, alone.position_probs, atol=OUT_ATOL)


def test_mixed_kinds_batch_like_separate_calls():
    model, data = backdoored_tiny()
    jobs = [Job(2, 2, seed=3), Job(2, None, seed=3)]
    kw = dict(hidden=16, lr=1e-2, steps=4, batch_size=8, progress=False)
    both = train_generators(model, data.x, jobs, **kw)
    for job, (_, hist) in zip(jobs, both):
        assert hist["hinge"] == pytest.approx(train_generators(model, data.x, [job], **kw)[0][1]["hinge"], abs=ATOL)


def test_batched_search_matches_the_per_class_reference():
    """Same targets, scores within one held-out image: the search against a loop of one-class trainings."""
    model, data = backdoored_tiny()
    train, heldout = data.split(36, 0)
    kw = dict(hidden=16, lr=1e-2, batch_size=8)
    res = search_target(model, train, heldout, 3, kinds=("patch",), steps=6, patch_sizes=(2,), seed=4, progress=False,
                        **kw)
    ref_scores = []
    for c in range(3):  # the reference: one class at a time, as the search did before it was batched
        (trig, _), = train_generators(model, train.x, [Job(c, 2, 4 + c)], steps=6, positions="adaptive",
                                      progress=False, **kw)
        ref_scores.append(proxy_rate(model, trig, heldout, c))
    ref_target = int(anomaly_index(ref_scores, 0.01).argmax())
    assert res.target == ref_target == 2
    tol = 1 / int((heldout.y != 0).sum()) + 1e-9
    assert res.scores == pytest.approx(ref_scores, abs=tol)


def test_proxy_rates_equal_the_one_at_a_time_rates():
    model, data = backdoored_tiny()
    trigs = [t for t, _ in train_generators(model, data.x, [Job(c, 2, c) for c in range(3)], hidden=8, steps=2,
                                            batch_size=8, progress=False)]
    assert proxy_rates(model, trigs, data, [0, 1, 2], draws=2) == [proxy_rate(model, t, data, c, 2)
                                                                   for t, c in zip(trigs, range(3))]


def test_heatmaps_of_all_jobs_equal_each_alone():
    model, data = backdoored_tiny()
    trigs = [t for t, _ in train_generators(model, data.x, [Job(c, 2, c) for c in range(3)], hidden=8, steps=2,
                                            batch_size=8, progress=False)]
    together = position_heatmaps(model, trigs, data.x[:4], [0, 1, 2], [5, 6, 7], chunk=50)
    for i, t in enumerate(trigs):
        alone = position_heatmaps(model, [t], data.x[:4], [i], [5 + i])[0]
        assert together[i].shape == (9, 9) and torch.allclose(together[i], alone, atol=1e-6)
    # one probed position recomputed by hand: the patches of seed 7 pasted at (4, 2)
    g = trigs[2].generator.eval().requires_grad_(False)
    p = g(torch.rand(4, 64, generator=torch.Generator().manual_seed(7)))
    x = data.x[:4].clone()
    x[:, :, 4:6, 2:4] = p
    with torch.no_grad():
        by_hand = float(torch.softmax(model(x), 1)[:, 2].mean())
    assert float(together[2][4, 2]) == pytest.approx(by_hand, abs=1e-6)


def test_bad_jobs_name_the_parameter():
    model, data = backdoored_tiny()
    with pytest.raises(ValueError, match="jobs"):
        train_generators(model, data.x, [], steps=1)
    with pytest.raises(ValueError, match="target"):
        train_generators(model, data.x, [Job(3, 2, 0)], steps=1)
    with pytest.raises(ValueError, match="patch_size"):
        train_generators(model, data.x, [Job(0, 11, 0)], steps=1)


def test_shared_recovery_is_computed_once_and_credited():
    model, data = backdoored_tiny()
    train, heldout = data.split(36, 0)
    kw = dict(kinds=("patch",), patch_sizes=(2,), hidden=8, gen_steps=2, search_steps=2, gen_batch_size=8,
              search_batch_size=8, seed=1, progress=False)
    memo = RecoveryMemo()
    with sharing(memo):
        first = recover(model, train, heldout, 3, **kw)
        again = recover(model, train, heldout, 3, **kw)
        other = recover(model, train, heldout, 3, **{**kw, "seed": 2})
    assert not first.reused and again.reused and not other.reused
    assert again.trigger is first.trigger and memo.credited == pytest.approx(first.seconds)
    assert len(memo.results) == 2
    unshared = recover(model, train, heldout, 3, **kw)  # outside sharing(): computed again, same result
    assert not unshared.reused and unshared.target == first.target


def test_fingerprint_sees_weights_and_data():
    model, data = backdoored_tiny()
    a = fingerprint((model, data, {"k": 1}))
    assert a == fingerprint((model, data, {"k": 1})) and a != fingerprint((model, data, {"k": 2}))
    with torch.no_grad():
        model.fc.bias[0] += 1e-3
    assert a != fingerprint((model, data, {"k": 1}))


def test_a_job_started_from_a_trained_trigger_continues_from_it():
    """``init``: the job's generator starts from the given trigger's weights and patch positions (no heatmap)."""
    model, data = backdoored_tiny()
    kw = dict(hidden=16, batch_size=8, positions="adaptive", progress=False)
    (first, _), = train_generators(model, data.x, [Job(2, 2, seed=1)], lr=1e-2, steps=6, **kw)
    (cont, _), (fresh, _) = train_generators(model, data.x, [Job(2, 2, seed=5), Job(2, 2, seed=5)], lr=1e-12,
                                             steps=1, init=[first, None], **kw)
    for a, b in zip(cont.generator.parameters(), first.generator.parameters()):
        assert torch.allclose(a, b, atol=1e-6)
    assert torch.equal(cont.position_probs, first.position_probs)
    assert not all(torch.allclose(a, b) for a, b in zip(fresh.generator.parameters(), first.generator.parameters()))
    with pytest.raises(ValueError, match="init"):
        train_generators(model, data.x, [Job(2, 2, seed=5)], steps=1, init=[first, None], **kw)
    with pytest.raises(ValueError, match="init"):
        train_generators(model, data.x, [Job(2, None, seed=5)], steps=1, init=[first], **kw)


def test_patience_stops_once_the_attack_term_has_stopped_gaining():
    """The corner backdoor is found within a few steps: with ``patience`` the training stops once the hinge has
    stopped gaining (after the heatmap step), without it every step runs."""
    model, data = backdoored_tiny()
    kw = dict(hidden=16, lr=1e-2, batch_size=8, steps=40, positions="adaptive", progress=False)
    (_, full), = train_generators(model, data.x, [Job(2, 2, seed=1)], **kw)
    (_, early), = train_generators(model, data.x, [Job(2, 2, seed=1)], patience=3, **kw)
    assert len(full["hinge"]) == 40
    assert 40 // 2 < len(early["hinge"]) < 40 and early["hinge"] == full["hinge"][:len(early["hinge"])]
    tail = early["hinge"][-4:]
    assert max(tail) - min(tail) < 0.05  # stopped on a plateau
    with pytest.raises(ValueError, match="patience"):
        train_generators(model, data.x, [Job(2, 2, seed=1)], patience=0, **kw)
