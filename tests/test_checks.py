"""The shared number checks: what they accept, what they reject, and that the error names the parameter."""

from __future__ import annotations

import math

import pytest

from unlearnlib.core.checks import check_number, check_positive_number

NOT_NUMBERS = [True, False, "1", None, [1.0], math.nan, math.inf, -math.inf, 10**400]


@pytest.mark.parametrize("value", [0, 0.0, 3, 2.5, 1e300])
def test_check_number_accepts_finite_non_negative_numbers(value):
    out = check_number(value, "lam")
    assert out == value and type(out) is float


@pytest.mark.parametrize("value", [*NOT_NUMBERS, -1, -1e-12])
def test_check_number_rejects_with_the_parameter_name(value):
    with pytest.raises(ValueError, match=r"^lam must be a finite number >= 0, got "):
        check_number(value, "lam")


def test_check_number_minimum():
    assert check_number(-1.5, "shift", minimum=-2) == -1.5
    with pytest.raises(ValueError, match=r"^shift must be a finite number >= 1, got 0.5"):
        check_number(0.5, "shift", minimum=1)


@pytest.mark.parametrize("value", [1e-12, 1, 0.5])
def test_check_positive_number_accepts(value):
    out = check_positive_number(value, "lr")
    assert out == value and type(out) is float


@pytest.mark.parametrize("value", [*NOT_NUMBERS, 0, 0.0, -1e-3])
def test_check_positive_number_rejects_with_the_parameter_name(value):
    with pytest.raises(ValueError, match=r"^lr must be a finite number > 0, got "):
        check_positive_number(value, "lr")


def test_check_choice_names_the_parameter_the_choices_and_their_meaning():
    from unlearnlib.core.checks import check_choice

    assert check_choice("b", ("a", "b"), "mode", "what it does") == "b"
    for bad in ("c", None, 1, ["a"]):
        with pytest.raises(ValueError, match=r"mode must be one of 'a', 'b' \(what it does\), got"):
            check_choice(bad, ("a", "b"), "mode", "what it does")


def test_default_threads_sets_and_restores_the_thread_count(monkeypatch):
    import os

    import torch

    from unlearnlib.core.device import configure_threads, default_threads

    monkeypatch.delenv("UNLEARNLIB_THREADS", raising=False)
    before = torch.get_num_threads()
    with default_threads(1):
        assert os.environ["UNLEARNLIB_THREADS"] == "1" and configure_threads() == 1 == torch.get_num_threads()
    assert "UNLEARNLIB_THREADS" not in os.environ and torch.get_num_threads() == before
    with default_threads(None):
        assert torch.get_num_threads() == before
    with pytest.raises(ValueError, match="^threads must be an integer >= 1"):
        with default_threads(0):
            pass
