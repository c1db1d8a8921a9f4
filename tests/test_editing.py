"""The closed-form edit: matches least squares, Conv2d path, layer choice, errors, never touches the input."""

from __future__ import annotations

import copy

import pytest
import torch
from torch import nn

from unlearnlib.data import Data
from unlearnlib.defenses import get_defense
from unlearnlib.ml.edit import SHIFTS, default_edit_layer, edit_layers, layer_keys, ridge_solve


def _lstsq(w, kt, v, kk, lam, mu):
    d = w.shape[1]
    a = torch.cat([kt, lam ** 0.5 * kk, mu ** 0.5 * torch.eye(d)])
    b = torch.cat([v, lam ** 0.5 * kk @ w.T, mu ** 0.5 * w.T])
    return torch.linalg.lstsq(a.double(), b.double()).solution.T.float()


@pytest.mark.parametrize("n", [3, 40])  # dual form (n < d) and primal form (n >= d)
def test_closed_form_matches_least_squares(n):
    g = torch.Generator().manual_seed(0)
    w, kt, kk = torch.randn(4, 12, generator=g), torch.randn(n, 12, generator=g), torch.randn(n, 12, generator=g)
    v = torch.randn(n, 4, generator=g)
    got = ridge_solve(w, kt, v, kk, lam=0.7, mu=0.3)
    assert torch.allclose(got, _lstsq(w, kt, v, kk, 0.7, 0.3), atol=1e-4)


def test_singular_system_names_mu():
    w, k = torch.randn(3, 10), torch.randn(2, 10)
    with pytest.raises(ValueError, match="mu"):
        ridge_solve(w, k, torch.randn(2, 3), k, lam=1.0, mu=0.0)


class Tiny(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(1, 3, 3, padding=1)
        self.hidden = nn.Linear(3 * 8 * 8, 16)
        self.out = nn.Linear(16, 4)

    def forward(self, x):
        return self.out(torch.relu(self.hidden(torch.relu(self.conv(x)).flatten(1))))


def _trigger(x):
    y = x.clone()
    y[:, :, -2:, -2:] = 1.0
    return y


def test_default_layer_rule():
    assert default_edit_layer(Tiny()) == default_edit_layer(Tiny(), "last") == "hidden"
    from unlearnlib.models.cnn import SmallCNN

    assert default_edit_layer(SmallCNN()) == default_edit_layer(SmallCNN(), "last") == "fc1"
    deep = nn.Sequential(nn.Flatten(), nn.Linear(64, 8), nn.ReLU(), nn.Linear(8, 8), nn.ReLU(), nn.Linear(8, 4))
    assert default_edit_layer(deep) == "1" and default_edit_layer(deep, "last") == "3"  # *[ours]*: first / last hidden
    assert default_edit_layer(nn.Sequential(nn.Conv2d(1, 2, 3), nn.Flatten(), nn.Linear(72, 4))) == "2"  # the output
    with pytest.raises(ValueError, match="hidden must be 'first' or 'last'"):
        default_edit_layer(deep, "middle")


def test_conv_keys_are_unfolded_patches_and_edit_maps_keys_to_values():
    torch.manual_seed(0)
    m = Tiny().eval()
    x = torch.rand(5, 1, 8, 8)
    keys = layer_keys(m, m.conv, x)
    assert keys.shape == (5 * 64, 9)
    w_out = keys @ m.conv.weight.reshape(3, -1).T  # conv output without bias, patch by patch
    ref = (m.conv(x) - m.conv.bias.view(1, -1, 1, 1)).permute(0, 2, 3, 1).reshape(-1, 3)
    assert torch.allclose(w_out, ref, atol=1e-5)
    edited = copy.deepcopy(m)
    edit_layers(edited, x, _trigger, layers="conv", lam=1.0, mu=1e-3)
    k_t = layer_keys(edited, edited.conv, _trigger(x))
    v = layer_keys(m, m.conv, x) @ m.conv.weight.reshape(3, -1).T
    before = (layer_keys(m, m.conv, _trigger(x)) @ m.conv.weight.reshape(3, -1).T - v).norm()
    after = (k_t @ edited.conv.weight.reshape(3, -1).T - v).norm()
    assert after < before


def test_errors_name_the_parameter():
    m = Tiny().eval()
    x = torch.rand(4, 1, 8, 8)
    with pytest.raises(ValueError, match="layers='nope'"):
        edit_layers(m, x, _trigger, layers="nope")
    m.add_module("act", nn.ReLU())
    with pytest.raises(ValueError, match="layers='act'"):
        edit_layers(m, x, _trigger, layers="act")
    with pytest.raises(ValueError, match="trigger"):
        edit_layers(m, x, lambda z: z[:, :, :4, :4])
    with pytest.raises(ValueError, match="lam"):
        edit_layers(m, x, _trigger, lam=-1)


def test_defense_never_modifies_the_input_model_and_is_json_info():
    import json

    torch.manual_seed(0)
    m = Tiny().eval()
    ref = copy.deepcopy(m.state_dict())
    data = Data(torch.rand(6, 1, 8, 8), torch.tensor([0, 1, 2, 3, 0, 1]))
    out = get_defense("agme-bdk", layers="hidden")(m, data, trigger=_trigger)
    assert all(torch.equal(ref[k], v) for k, v in m.state_dict().items())
    assert not torch.equal(out.model.hidden.weight, m.hidden.weight)
    json.dumps(out.info)
    assert out.info["layers"] == ["hidden"] and out.info["edit_seconds"] > 0


def test_the_default_edits_the_hidden_linear_from_shifted_copies():
    """*[ours]* (chapter 8's grid): the last hidden Linear alone, 25 shifted keys per sample, 50 samples by
    default; ``layers="auto"`` is the book's first default, the cascade from the last conv."""
    torch.manual_seed(0)
    m = Tiny().eval()
    data = Data(torch.rand(6, 1, 8, 8), torch.tensor([0, 1, 2, 3, 0, 1]))
    info = get_defense("agme-bdk")(m, data, trigger=_trigger).info
    assert info["layers"] == [default_edit_layer(m)] == ["hidden"] and info["keys"] == [6 * 25 * 2]
    assert get_defense("agme-bdk", augment=False)(m, data, trigger=_trigger).info["keys"] == [6 * 2]
    assert get_defense("agme-bdk", layers="auto")(m, data, trigger=_trigger).info["layers"][0] == "conv"
    assert get_defense("agme-bdk").default_unseen == 50 and get_defense("agme").shifts == SHIFTS


def test_bad_unseen_counts_name_unseen():
    from unlearnlib.experiment.scenario import make_scenario

    sc = make_scenario("quick", "badnets", 0, progress=False)
    for n in (0, len(sc.split.defender) + 1):
        with pytest.raises(ValueError, match="unseen"):
            sc.defender(n)


class Deep(nn.Module):
    """Two hidden Linears and an output, named nothing the defaults know (like the grid's LeNet-5 and MLP)."""

    def __init__(self):
        super().__init__()
        self.a, self.b, self.c = nn.Linear(64, 12), nn.Linear(12, 10), nn.Linear(10, 4)

    def forward(self, x):
        return self.c(torch.relu(self.b(torch.relu(self.a(x.flatten(1))))))


def test_hidden_names_which_hidden_linears_the_edit_rewrites():
    from unlearnlib.ml.edit import hidden_linears

    torch.manual_seed(0)
    m = Deep().eval()
    data = Data(torch.rand(6, 1, 8, 8), torch.tensor([0, 1, 2, 3, 0, 1]))
    assert hidden_linears(m) == ["a", "b"] and hidden_linears(Tiny()) == ["hidden"]
    for hidden, layers in (("first", ["a"]), ("last", ["b"]), ("all", ["a", "b"])):
        out = get_defense("agme-bdk", hidden=hidden)(m, data, trigger=_trigger)
        assert out.info["layers"] == layers and out.info["hidden"] == hidden
        for name in ("a", "b", "c"):  # exactly the named layers change
            assert torch.equal(getattr(out.model, name).weight, getattr(m, name).weight) == (name not in layers)
    assert get_defense("agme-bdk", hidden="all")(Tiny().eval(), data, trigger=_trigger).info["layers"] == ["hidden"]
    assert get_defense("agme-bdk", hidden="all", layers="auto")(Tiny().eval(), data,
                                                                 trigger=_trigger).info["layers"][0] == "conv"
    with pytest.raises(ValueError, match="hidden must be one of"):
        get_defense("agme-bdk", hidden="middle")


def test_key_shifts_gives_each_sample_the_identity_and_a_seeded_subset_of_the_shifts():
    from unlearnlib.defenses.agme_bdk import pick_shifts
    from unlearnlib.ml.edit import DENSE_SHIFTS, shift_augment

    n, shifts = 7, DENSE_SHIFTS
    rows = pick_shifts(n, shifts, 3, seed=0)
    assert len(rows) == n * 3 and len(set(rows.tolist())) == n * 3
    per_sample = {i: sorted(int(r) // n for r in rows if int(r) % n == i) for i in range(n)}
    ident = shifts.index((0, 0))
    assert all(len(s) == 3 and ident in s for s in per_sample.values())
    assert torch.equal(rows, pick_shifts(n, shifts, 3, seed=0)) and not torch.equal(rows, pick_shifts(n, shifts, 3, 1))
    assert len(pick_shifts(n, ((1, 0), (0, 1), (2, 2)), 2, seed=0)) == n * 2  # no identity among the shifts
    x = torch.rand(n, 1, 8, 8)
    m = Tiny().eval()
    assert torch.equal(get_defense("agme-bdk", key_shifts=4).key_inputs(x), shift_augment(x, shifts)[
        pick_shifts(n, shifts, 4, 0)])
    assert torch.equal(get_defense("agme-bdk").key_inputs(x), shift_augment(x, shifts))  # 0: every shift
    assert torch.equal(get_defense("agme-bdk", key_shifts=30).key_inputs(x), shift_augment(x, shifts))
    data = Data(x, torch.tensor([0, 1, 2, 3, 0, 1, 2]))
    assert get_defense("agme-bdk", key_shifts=4)(m, data, trigger=_trigger).info["keys"] == [n * 4 * 2]
    with pytest.raises(ValueError, match="key_shifts"):
        get_defense("agme-bdk", key_shifts=-1)
