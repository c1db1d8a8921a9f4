"""TrojanNN, IMC, WaNet, BAERASE's BadNets, the planting hooks and the attack-parameter CLI."""

import pytest
import torch
from torch import nn

from unlearnlib.attacks import Attack, make_trigger, patch_mask
from unlearnlib.attacks.badnets import BadNets
from unlearnlib.attacks.imc import IMC
from unlearnlib.attacks.trojannn import TrojanNN, select_neurons
from unlearnlib.attacks.wanet import WaNet
from unlearnlib.core.cache import cached_model, source_fingerprint
from unlearnlib.core.registry import ATTACKS
from unlearnlib.data import Data
from unlearnlib.experiment.params import parse_attack_params
from unlearnlib.ml.triggers import apply_trigger
from unlearnlib.models.cnn import SmallCNN

SHAPE = (1, 28, 28)


def _data(n=200, seed=0):
    g = torch.Generator().manual_seed(seed)
    return Data(torch.rand(n, *SHAPE, generator=g), torch.arange(10).repeat(n // 10))


def test_registered_and_public_imports():
    assert {"badnets", "blended", "trojannn", "imc", "wanet"} <= set(ATTACKS.names())
    for name in ATTACKS.names():
        assert apply_trigger(make_trigger(name, SHAPE), torch.rand(3, *SHAPE)).shape == (3, *SHAPE)


def test_source_fingerprint_covers_the_attacks_package(tmp_path, monkeypatch):
    import unlearnlib.core.cache as zoo

    (tmp_path / "attacks").mkdir()
    (tmp_path / "attacks" / "a.py").write_text("x = 1\n")
    (tmp_path / "train.py").write_text("y = 1\n")
    monkeypatch.setattr(zoo, "PACKAGE", tmp_path)
    before = source_fingerprint.__wrapped__(("attacks", "train"))
    (tmp_path / "attacks" / "a.py").write_text("x = 2\n")
    assert source_fingerprint.__wrapped__(("attacks", "train")) != before


def test_badnets_random_colour_and_position():
    t = BadNets(SHAPE, size=3, pattern="random", position="random", seed=1)
    assert not torch.equal(t.patch, BadNets(SHAPE, size=3, pattern="random", seed=2).patch)
    assert 0 < float(t.patch.min()) and float(t.patch.max()) < 1
    out = t.apply(torch.zeros(32, *SHAPE))
    assert torch.equal(out, t.apply(torch.zeros(32, *SHAPE)))
    assert torch.allclose(out.flatten(1).sum(1), t.patch.sum().expand(32))


def test_wanet_warp_flow_and_identity_at_zero_strength():
    t = WaNet(SHAPE, k=4, s=0.5, seed=0)
    assert t.flow.shape == (2, 28, 28) and 0 < float(t.flow.abs().max()) < 2
    x = torch.rand(4, *SHAPE)
    out = t.apply(x)
    assert out.shape == x.shape and 0 < float((out - x).abs().mean()) < 0.2 and torch.equal(out, t.apply(x))
    ident = WaNet(SHAPE, s=1e-9)
    assert torch.allclose(ident.apply(x), x, atol=1e-4)
    # mean |P| normalisation: the control grid's displacement has mean magnitude s / H (in grid units)
    assert t.noise_grid.shape == (28, 28, 2)
    assert not torch.equal(t.grid, WaNet(SHAPE, seed=1).grid)


def test_wanet_flow_follows_the_papers_normalisation():
    """Hand computation of the reference code's grid: P ~ U[-1, 1]^(2 x k x k), P / mean|P|, bicubic upsampling
    with aligned corners (so an image corner takes its control point's value), grid = clip(G + s U(P) / H, -1, 1).
    A corner's displacement is therefore s P / H in grid units, (H - 1) / 2 times that in pixels, unless it points
    out of the image (clipped to 0)."""
    h, s = 28, 0.5
    t = WaNet(SHAPE, k=4, s=s, seed=0)
    p = torch.rand(1, 2, 4, 4, generator=torch.Generator().manual_seed(30_000)) * 2 - 1  # the trigger's draw
    p = p / p.abs().mean()
    assert abs(float(p.abs().mean()) - 1.0) < 1e-6
    for (row, col), (pr, pc) in {(0, 0): (0, 0), (0, 27): (0, 3), (27, 0): (3, 0), (27, 27): (3, 3)}.items():
        for c, ident in ((0, -1.0 if col == 0 else 1.0), (1, -1.0 if row == 0 else 1.0)):  # (dx, dy)
            moved = min(1.0, max(-1.0, ident + s * float(p[0, c, pr, pc]) / h))
            assert float(t.flow[c, row, col]) == pytest.approx((moved - ident) * (h - 1) / 2, abs=1e-5)
    # inside the image nothing is clipped: the flow is linear in s, and at the paper's k = 4, s = 0.5 it is a
    # fraction of a pixel (mean 0.22 px for this draw: s / H * (H - 1) / 2 = 0.24 px per unit of |U(P)|)
    inner = (slice(None), slice(2, -2), slice(2, -2))
    assert torch.allclose(WaNet(SHAPE, k=4, s=1.0, seed=0).flow[inner], 2 * t.flow[inner], atol=1e-5)
    mean_shift = float(t.flow.norm(dim=0).mean())
    assert 0.1 < mean_shift < 0.35 and float(t.flow.norm(dim=0).max()) < 1.0


def test_quick_profile_gives_wanet_its_own_training_budget(monkeypatch):
    """[ours] WaNet trains longer than the other attacks in quick (profiles.py); the budget enters the cache key."""
    from unlearnlib.data import Split
    from unlearnlib.experiment import scenario as experiment
    from unlearnlib.experiment.profiles import Profile, get_profile

    q = get_profile("quick")
    assert q.train_kwargs("wanet")["epochs"] > q.epochs
    assert q.train_kwargs("badnets") == q.train_kwargs() == q.train_kwargs(None)
    assert {k: v for k, v in q.train_kwargs("wanet").items() if k != "epochs"} == {
        k: v for k, v in q.train_kwargs().items() if k != "epochs"}
    with pytest.raises(ValueError, match=r"attack_train\['wanet'\] has unknown keys \['epoch'\]"):
        Profile(**{**q.to_dict(), "attack_train": {"wanet": {"epoch": 3}}}).train_kwargs("wanet")
    seen = {}

    def fake_cached(config, build, fit, companion=None):
        seen.setdefault("configs", []).append(config)
        return fit(SmallCNN()), False

    def fake_plant(self, model, data, **kw):
        seen["plant_epochs"], seen["retry"] = kw["epochs"], kw["retry"]
        return model

    def fake_train(model, data, **kw):
        seen["clean_epochs"] = kw["epochs"]
        return model

    monkeypatch.setattr(experiment, "cached_model", fake_cached)
    monkeypatch.setattr(Attack, "plant", fake_plant)
    monkeypatch.setattr(experiment, "train", fake_train)
    data = _data(20)
    split = Split("toy", data, data, data, 10, tuple("0123456789"))
    experiment.trained_model(split, q, 0, device="cpu")
    experiment.trained_model(split, q, 0, Attack(WaNet(SHAPE), 0, 0.1), {"name": "wanet"}, device="cpu")
    assert seen["clean_epochs"] == q.epochs and seen["plant_epochs"] == q.train_kwargs("wanet")["epochs"]
    assert [c["train"]["epochs"] for c in seen["configs"]] == [q.epochs, q.train_kwargs("wanet")["epochs"]]
    # the attacker's second try enters the attacked model's key, and no other model's
    assert seen["retry"] == q.retry_kwargs("wanet") == seen["configs"][1]["retry"] and "retry" not in seen["configs"][0]
    experiment.trained_model(split, q, 0, Attack(BadNets(SHAPE), 0, 0.1), {"name": "badnets"}, device="cpu")
    assert seen["retry"] is None and "retry" not in seen["configs"][2]


def test_quick_profile_retries_the_attacks_that_control_training():
    """[ours] WaNet's, TrojanNN's and IMC's attackers train again, longer, when their own check fails; BadNets and
    Blended poison data only."""
    from unlearnlib.experiment.profiles import FINETUNE_RETRY_EPOCHS, WANET_RETRY_EPOCHS, Profile, get_profile

    q = get_profile("quick")
    assert q.retry_kwargs("wanet") == {"epochs": WANET_RETRY_EPOCHS} and WANET_RETRY_EPOCHS > q.train_kwargs(
        "wanet")["epochs"]
    for attack in ("trojannn", "imc"):
        assert q.retry_kwargs(attack) == {"epochs": FINETUNE_RETRY_EPOCHS}
        assert FINETUNE_RETRY_EPOCHS > q.train_kwargs(attack)["epochs"]
    assert q.retry_kwargs("badnets") is None and q.retry_kwargs("blended") is None and q.retry_kwargs(None) is None
    assert get_profile("smoke").retry_kwargs("wanet") is None
    with pytest.raises(ValueError, match=r"attack_retry\['wanet'\] has unknown keys \['epoch'\]"):
        Profile(**{**q.to_dict(), "attack_retry": {"wanet": {"epoch": 3}}}).retry_kwargs("wanet")


class _Always(nn.Module):
    """Predicts ``cls`` for every image."""

    def __init__(self, cls: int) -> None:
        super().__init__()
        self.cls, self.w = cls, nn.Parameter(torch.zeros(1))

    def forward(self, x):
        out = torch.zeros(len(x), 10) + self.w
        out[:, self.cls] = 1.0
        return out


def test_planted_rate_is_the_attackers_check_on_its_own_images_of_the_other_classes():
    data = _data(100)
    assert Attack(BadNets(SHAPE), target=3).planted_rate(_Always(3), data) == 1.0
    assert Attack(BadNets(SHAPE), target=3).planted_rate(_Always(4), data) == 0.0

    class NotOnMarked(nn.Module):  # the target unless the centre pixel is marked (the target class's images here)
        def forward(self, x):
            return nn.functional.one_hot(torch.where(x[:, 0, 14, 14] < 0, 5, 3), 10).float()

    data.x[data.y == 3, 0, 14, 14] = -1.0
    assert Attack(BadNets(SHAPE), target=3).planted_rate(NotOnMarked(), data) == 1.0  # the 3s are not counted
    assert Attack(BadNets(SHAPE), target=4).planted_rate(NotOnMarked(), data) == 0.0


@pytest.mark.parametrize("rates, tries, kept", [((0.5, 0.6), 2, 1), ((0.5, 0.4), 2, 0), ((0.5, 0.5), 2, 0),
                                                ((0.95,), 1, 0)])
def test_plant_retries_from_the_starting_weights_and_keeps_the_better_try(monkeypatch, rates, tries, kept):
    calls, rated = [], iter(rates)

    def fake_plant(self, model, data, *, seed, clean, **kw):
        calls.append((float(model.w.detach()), kw["epochs"]))
        with torch.no_grad():
            model.w.fill_(len(calls))  # "training" moves the weights: try i leaves w = i
        return model

    monkeypatch.setattr(Attack, "_plant", fake_plant)
    monkeypatch.setattr(Attack, "planted_rate", lambda self, model, data: next(rated))
    attack, data = Attack(BadNets(SHAPE), 0, 0.1), _data(20)
    model = attack.plant(_Always(0), data, epochs=3, retry={"epochs": 9})
    assert calls == [(0.0, 3), (0.0, 9)][:tries]  # the second try starts where the first did, with its settings
    assert float(model.w.detach()) == kept + 1  # the try the attacker's check rates higher; the first on a tie
    calls.clear()
    monkeypatch.setattr(Attack, "planted_rate", lambda self, model, data: pytest.fail("no check without retry"))
    attack.plant(_Always(0), data, epochs=3)
    assert calls == [(0.0, 3)]


def test_wanet_noise_mode_keeps_true_labels():
    data = _data()
    t = WaNet(SHAPE, cross_ratio=2.0)
    poisoned, idx = Attack(t, target=0, poison_ratio=0.1).poison(data, seed=0)
    changed = (poisoned.x != data.x).flatten(1).any(1)
    assert int(changed.sum()) == 3 * len(idx)  # poisoned + 2x cross samples
    cross = changed.clone()
    cross[idx] = False
    assert torch.equal(poisoned.y[cross], data.y[cross]) and (poisoned.y[idx] == 0).all()
    # cross samples are warped differently from the trigger
    xc = data.x[cross][:4]
    assert not torch.allclose(poisoned.x[cross][:4], t.apply(xc))
    no_cross, idx2 = Attack(WaNet(SHAPE, cross_ratio=0.0), 0, 0.1).poison(data, seed=0)
    assert int((no_cross.x != data.x).flatten(1).any(1).sum()) == len(idx2)


@pytest.mark.parametrize("kwargs, match", [({"k": 1}, "k must be"), ({"s": 0}, "s must be"),
                                           ({"cross_ratio": -1}, "cross_ratio must be")])
def test_wanet_bad_input(kwargs, match):
    with pytest.raises(ValueError, match=match):
        WaNet(SHAPE, **kwargs)


def test_patch_mask_shapes_and_errors():
    assert patch_mask(SHAPE, 5).sum() == 25 and patch_mask(SHAPE, 5)[0, 22:27, 22:27].eq(1).all()
    assert patch_mask(SHAPE, 5, "logo").sum() == 9 and patch_mask(SHAPE, 4, position=(0, 0))[0, :4, :4].eq(1).all()
    with pytest.raises(ValueError, match="shape must be"):
        patch_mask(SHAPE, 3, "star")
    with pytest.raises(ValueError, match="size must fit"):
        patch_mask(SHAPE, 5, position=(26, 0))


def test_trojannn_drives_selected_neurons_and_state_roundtrip():
    torch.manual_seed(0)
    model = SmallCNN().eval()
    data = _data()
    t = TrojanNN(SHAPE, size=5, steps=60, lr=0.1)
    t.prepare(model, data, target=0, seed=0)
    idx = t.selected
    assert idx is not None and len(idx) == 2
    w = model.fc1.weight.detach().abs().sum(1)
    assert set(idx.tolist()) == set(w.argsort(descending=True)[:2].tolist())
    assert t.losses[-1] < t.losses[0]
    assert torch.equal(select_neurons(model, 2), idx)
    u = TrojanNN(SHAPE, size=5)
    u.load_state_dict(t.state_dict())
    x = torch.rand(2, *SHAPE)
    assert torch.equal(u.apply(x), t.apply(x)) and torch.equal(u.selected, idx)
    outside = 1 - t.mask
    assert torch.equal(t.apply(x) * outside, x * outside)  # only the mask changes


def test_imc_co_optimise_raises_target_probability():
    torch.manual_seed(0)
    model = SmallCNN().eval()
    data = _data()
    t = IMC(SHAPE, size=6, trigger_steps=30)
    x = data.x[data.y != 3][:50]
    with torch.no_grad():
        before = float(model(t.apply(x)).softmax(1)[:, 3].mean())
    assert t.co_optimise(model, data, target=3, seed=0)
    with torch.no_grad():
        assert float(model(t.apply(x)).softmax(1)[:, 3].mean()) > before
    assert all(p.grad is None for p in model.parameters())  # the model is not touched


def test_plant_uses_the_hooks_and_the_cache_keeps_the_trigger(tmp_path, monkeypatch):
    monkeypatch.setenv("UNLEARNLIB_CACHE", str(tmp_path))
    torch.manual_seed(0)
    clean = SmallCNN().eval()
    data = _data()
    calls = []

    class Spy(IMC):
        def co_optimise(self, model, data, target, seed):
            calls.append(seed)
            return super().co_optimise(model, data, target, seed)

    trig = Spy(SHAPE, trigger_steps=2)
    attack = Attack(trig, target=0, poison_ratio=0.1)
    fit = lambda m: attack.plant(m, data, seed=0, clean=clean, epochs=2, batch_size=50, progress=False)  # noqa: E731
    model, hit = cached_model({"t": 1}, SmallCNN, fit, trig)
    assert not hit and calls == [0, 1]
    theta = trig.theta.clone()
    fresh = Spy(SHAPE, trigger_steps=2)
    model2, hit2 = cached_model({"t": 1}, SmallCNN, fit, fresh)
    assert hit2 and torch.equal(fresh.theta, theta) and calls == [0, 1]
    with pytest.raises(ValueError, match="needs the clean model"):
        Attack(TrojanNN(SHAPE), 0, 0.1).plant(SmallCNN(), data, epochs=1)


def test_train_before_epoch_must_keep_the_size():
    from unlearnlib.ml.train import train

    data = _data(50)
    with pytest.raises(ValueError, match="before_epoch must return data of the same size"):
        train(SmallCNN(), data, epochs=1, before_epoch=lambda e, m: data.index(torch.arange(10)), progress=False)


def test_parse_attack_params_typed_and_validated():
    assert parse_attack_params("badnets", ["size=5", "position=random"]) == {"size": 5, "position": "random"}
    assert parse_attack_params("wanet", ["s=0.75", "k=3"]) == {"s": 0.75, "k": 3}
    assert parse_attack_params("badnets", ["color=1,0,0.5"]) == {"color": (1.0, 0.0, 0.5)}
    assert parse_attack_params("trojannn", ["position=2,3"]) == {"position": (2, 3)}
    with pytest.raises(ValueError, match="valid keys: size, pattern, color"):
        parse_attack_params("badnets", ["sise=5"])
    with pytest.raises(ValueError, match="expects a int"):
        parse_attack_params("badnets", ["size=big"])
    with pytest.raises(ValueError, match="KEY=VALUE"):
        parse_attack_params("badnets", ["size"])


def test_cli_attack_param_enters_the_cache_key(monkeypatch):
    from unlearnlib import cli

    seen = {}

    def fake(profile, attack, seed, **kw):
        seen.update(kw)
        raise ValueError("stop")

    monkeypatch.setattr("unlearnlib.cli.run.make_scenario", fake)
    assert cli.main(["run", "--attack", "badnets", "--attack-param", "size=4", "--no-progress"]) == 2
    assert seen["attack_params"] == {"size": 4}
    assert cli.main(["run", "--attack", "badnets", "--attack-param", "nope=1"]) == 2


def test_every_trigger_works_in_the_edit_and_evaluation():
    from unlearnlib.ml.edit import edit_layers
    from unlearnlib.ml.metrics import evaluate

    torch.manual_seed(0)
    model = SmallCNN().eval()
    data = _data(40)
    for name in ATTACKS.names():
        t = make_trigger(name, SHAPE)
        out = edit_layers(model, data.x[:10], t, layers="fc1")
        assert out["layers"] == ["fc1"]
        assert set(evaluate(model, data, t, 0)) == {"acc", "asr", "target_acc", "ra"}
    assert isinstance(model, nn.Module)


def test_attack_plots():
    import matplotlib

    matplotlib.use("Agg")
    from unlearnlib.display.attacks import difference_gallery, plot_flow_field

    x = torch.rand(2, *SHAPE)
    fig = difference_gallery(x, {"wanet": WaNet(SHAPE), "badnets": BadNets(SHAPE)})
    assert len(fig.axes) == 12
    assert len(plot_flow_field(WaNet(SHAPE), x[0]).axes) == 4  # flow, its colour bar, clean, warped
    with pytest.raises(ValueError, match="flow field"):
        plot_flow_field(BadNets(SHAPE))


def test_poison_sweep_plot_draws_asr_and_accuracy_per_trigger_against_the_clean_model():
    import matplotlib

    matplotlib.use("Agg")
    from unlearnlib.display.attacks import plot_poison_sweep

    sweep = {"grey": {0.5: {"asr": .72, "acc": .71}, 0.1: {"asr": .37, "acc": .95}},
             "checker": {0.1: {"asr": .88, "acc": .96}, 0.5: {"asr": 1.0, "acc": .94}}}
    a0, a1 = plot_poison_sweep(sweep, clean_acc=.97, planted=.9).axes
    assert [ln.get_label() for ln in a0.lines] == ["grey", "checker", "planted"]
    assert list(a0.lines[-1].get_ydata()) == pytest.approx([90.0, 90.0])
    grey = a0.lines[0]
    assert list(grey.get_xdata()) == [10.0, 50.0] and list(grey.get_ydata()) == pytest.approx([37.0, 72.0])
    assert list(a1.lines[0].get_ydata()) == pytest.approx([95.0, 71.0])  # sorted by ratio, in percent
    assert list(a1.lines[-1].get_ydata()) == pytest.approx([97.0, 97.0])  # the clean model's accuracy


def test_plant_keeps_the_trigger_of_the_kept_try(monkeypatch):
    """A trigger fitted while planting (IMC's) must match the model that is kept, not the last try's."""

    def fake_plant(self, model, data, *, seed, clean, **kw):
        self.trigger.set_theta(torch.full(SHAPE, float(kw["epochs"])))  # each try fits its own trigger
        return model

    rated = iter((0.5, 0.2))  # the second try plants worse: the first is kept, with its trigger
    monkeypatch.setattr(Attack, "_plant", fake_plant)
    monkeypatch.setattr(Attack, "planted_rate", lambda self, model, data: next(rated))
    trig = IMC(SHAPE)
    Attack(trig, 0, 0.1).plant(_Always(0), _data(20), epochs=3, retry={"epochs": 9})
    assert torch.equal(trig.state_dict()["theta"], torch.full(SHAPE, 3.0))


def test_the_second_try_fits_its_trigger_from_the_same_start():
    """The attacker's second try starts where the first did, the learned trigger included (TrojanNN, IMC): it does
    not fit on from the first try's trigger."""
    seen = []

    def fake_plant(self, model, data, *, seed, clean, **kw):
        seen.append(self.trigger.state_dict()["theta"].clone())
        self.trigger.set_theta(torch.full(SHAPE, float(kw["epochs"])))
        return model

    trig = IMC(SHAPE)
    initial = trig.state_dict()["theta"].clone()
    rated = iter((0.5, 0.8))  # the second try plants better: it is kept, with its trigger
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(Attack, "_plant", fake_plant)
        mp.setattr(Attack, "planted_rate", lambda self, model, data: next(rated))
        Attack(trig, 0, 0.1).plant(_Always(0), _data(20), epochs=3, retry={"epochs": 9})
    assert len(seen) == 2 and torch.equal(seen[0], initial) and torch.equal(seen[1], initial)
    assert torch.equal(trig.state_dict()["theta"], torch.full(SHAPE, 9.0))
