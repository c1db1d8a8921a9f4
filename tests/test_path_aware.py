"""Path-aware fine-tuning (unlearnlib.ml.path_aware): the gradient is taken ahead along the path from the
backdoored model and applied at the current weights."""

from __future__ import annotations

import copy

import pytest
import torch
from torch import nn

from unlearnlib.data import Data
from unlearnlib.ml.path_aware import path_aware_finetune, path_step
from unlearnlib.ml.train import train


def _net(seed: int) -> nn.Module:
    torch.manual_seed(seed)
    return nn.Sequential(nn.Flatten(), nn.Linear(4, 3))


def test_the_step_moves_rho_along_the_path_and_back():
    ref, model = _net(0), _net(1)
    before = [p.detach().clone() for p in model.parameters()]
    diff = torch.cat([(p - r).flatten() for p, r in zip(model.parameters(), ref.parameters())])
    restore = path_step(ref, 0.5)(model)
    moved = torch.cat([(p - b).flatten() for p, b in zip(model.parameters(), before)])
    assert torch.allclose(moved, 0.5 * diff / diff.norm(), atol=1e-6)  # rho along the unit direction
    restore()
    assert all(torch.equal(p, b) for p, b in zip(model.parameters(), before))


def test_one_training_step_uses_the_gradient_at_the_moved_point():
    ref, model = _net(0), _net(1)
    data = Data(torch.randn(8, 1, 2, 2), torch.randint(0, 3, (8,)))
    rho = 0.3
    # by hand: the gradient at theta + rho * d / |d|, one SGD step (no momentum) of it at theta
    ahead = copy.deepcopy(model)
    path_step(ref, rho)(ahead)
    loss = nn.functional.cross_entropy(ahead(data.x), data.y)
    grads = torch.autograd.grad(loss, list(ahead.parameters()))
    expected = [p.detach() - 0.1 * g for p, g in zip(model.parameters(), grads)]
    opt_free = copy.deepcopy(model)
    trained = train(opt_free, data, epochs=1, lr=0.1, batch_size=8, optimizer="adam", schedule="constant",
                    device="cpu", progress=False, perturb=path_step(ref, rho))
    plain = train(copy.deepcopy(model), data, epochs=1, lr=0.1, batch_size=8, optimizer="adam",
                  schedule="constant", device="cpu", progress=False)
    # Adam's first step is lr * sign(g) (up to eps): compare the signs of the applied steps
    step = [(t - p).detach() for t, p in zip(trained.parameters(), model.parameters())]
    assert all(torch.equal(torch.sign(s), torch.sign(e - p.detach()))
               for s, e, p in zip(step, expected, model.parameters()))
    assert any(not torch.equal(a, b) for a, b in zip(trained.parameters(), plain.parameters()))


def test_path_aware_finetune_returns_a_copy_and_checks_its_inputs():
    ref, model = _net(0), _net(1)
    data = Data(torch.randn(16, 1, 2, 2), torch.randint(0, 3, (16,)))
    state = copy.deepcopy(model.state_dict())
    out = path_aware_finetune(model, ref, data, alpha=1.0, epochs=2, device="cpu", progress=False)
    assert out is not model and all(torch.equal(state[k], v) for k, v in model.state_dict().items())
    with pytest.raises(ValueError, match="^alpha must be"):
        path_aware_finetune(model, ref, data, alpha=0, device="cpu")
    with pytest.raises(ValueError, match="^model equals reference"):
        path_aware_finetune(model, model, data, device="cpu")
    with pytest.raises(ValueError, match="^reference must have the same architecture"):
        path_aware_finetune(model, nn.Sequential(nn.Flatten(), nn.Linear(4, 2)), data, device="cpu")


def test_extrapolate_moves_alpha_times_further_from_the_reference():
    from unlearnlib.ml.path_aware import extrapolate

    ref, model = _net(0), _net(1)
    out = extrapolate(model, ref, 2.0)
    for o, m, r in zip(out.parameters(), model.parameters(), ref.parameters()):
        assert torch.allclose(o, m + 2.0 * (m - r))
    assert out is not model and not torch.equal(next(out.parameters()), next(model.parameters()))
    with pytest.raises(ValueError, match="^alpha must be"):
        extrapolate(model, ref, -1.0)
