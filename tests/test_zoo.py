import warnings

import pytest
import torch
from torch import nn

from unlearnlib.core import cache as zoo


@pytest.fixture(autouse=True)
def private_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("UNLEARNLIB_CACHE", str(tmp_path))


def _fit_counter():
    calls = []

    def fit(m):
        calls.append(1)
        with torch.no_grad():
            m.weight.fill_(0.5)
        return m

    return calls, fit


def test_cache_miss_then_hit():
    calls, fit = _fit_counter()
    m1, hit1 = zoo.cached_model({"a": 1}, lambda: nn.Linear(2, 2), fit)
    m2, hit2 = zoo.cached_model({"a": 1}, lambda: nn.Linear(2, 2), fit)
    assert (hit1, hit2) == (False, True) and len(calls) == 1 and torch.equal(m1.weight, m2.weight)
    assert zoo.model_path({"a": 1}).exists() and not list(zoo.model_path({"a": 1}).parent.glob("*.tmp"))


def test_key_depends_on_config_and_version(monkeypatch):
    k = zoo.cache_key({"a": 1})
    assert k != zoo.cache_key({"a": 2})
    monkeypatch.setattr(zoo, "__version__", "99")
    assert k != zoo.cache_key({"a": 1})


def test_key_depends_on_the_training_source(tmp_path, monkeypatch):
    """An edited model or training file gives a new key (a stale model is never reused)."""
    pkg = tmp_path / "pkg"
    for f in ("data/splits.py", "models/cnn.py", "attacks/badnets.py", "ml/train.py", "core/device.py",
              "display/style.py"):
        (pkg / f).parent.mkdir(parents=True, exist_ok=True)
        (pkg / f).write_text(f"# {f}\n")
    monkeypatch.setattr(zoo, "PACKAGE", pkg)
    zoo.source_fingerprint.cache_clear()
    try:
        k = zoo.cache_key({"a": 1})
        (pkg / "display/style.py").write_text("# a plot's colour, edited\n")  # not what a model is trained by
        zoo.source_fingerprint.cache_clear()
        assert zoo.cache_key({"a": 1}) == k
        (pkg / "ml/train.py").write_text("# the training loop, edited\n")
        zoo.source_fingerprint.cache_clear()
        assert zoo.cache_key({"a": 1}) != k
        assert zoo.source_fingerprint() == zoo.source_fingerprint(None)  # every .py file
    finally:
        zoo.source_fingerprint.cache_clear()


def test_corrupt_file_is_detected_reported_and_rebuilt():
    calls, fit = _fit_counter()
    zoo.cached_model({"a": 1}, lambda: nn.Linear(2, 2), fit)
    zoo.model_path({"a": 1}).write_bytes(b"not a checkpoint")
    with pytest.warns(UserWarning, match="corrupt or mismatched"):
        _, hit = zoo.cached_model({"a": 1}, lambda: nn.Linear(2, 2), fit)
    assert not hit and len(calls) == 2
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert zoo.cached_model({"a": 1}, lambda: nn.Linear(2, 2), fit)[1]


def test_mismatched_file_is_rebuilt():
    calls, fit = _fit_counter()
    zoo.cached_model({"a": 1}, lambda: nn.Linear(2, 2), fit)
    path = zoo.model_path({"a": 1})
    blob = torch.load(path, weights_only=True)
    blob["config"] = '{"a": 2}'
    torch.save(blob, path)
    with pytest.warns(UserWarning, match="does not match"):
        zoo.cached_model({"a": 1}, lambda: nn.Linear(2, 2), fit)
    assert len(calls) == 2


def test_pickled_code_is_never_loaded(capfd):
    class Evil:
        def __reduce__(self):
            return (print, ("pwned",))

    _, fit = _fit_counter()
    path = zoo.model_path({"a": 1})
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.save({"format": 1, "evil": Evil()}, path)
    capfd.readouterr()
    with pytest.warns(UserWarning, match="corrupt or mismatched"):
        zoo.cached_model({"a": 1}, lambda: nn.Linear(2, 2), fit)
    assert "pwned" not in capfd.readouterr().out  # weights_only=True refused to run the pickled call


def test_atomic_write_leaves_nothing_on_failure(tmp_path):
    target = tmp_path / "out.json"

    def boom(p):
        p.write_text("partial")
        raise RuntimeError("disk full")

    with pytest.raises(RuntimeError):
        zoo.atomic_write(target, boom)
    assert not target.exists() and not list(tmp_path.glob(".out.json*"))
