"""``KEY=VALUE`` parameters on the command line (``--attack-param``, ``--defense-param``), typed from the
constructor signature of the attack or defense they are for, and back (:func:`param_pairs`)."""

from __future__ import annotations

import inspect
import json
from collections.abc import Sequence
from typing import Any

from ..core.registry import ATTACKS
from ..defenses.base import settable_params


def _parse_value(text: str, default: Any, key: str, owner: str, flag: str) -> Any:
    """``text`` typed like the constructor default ``default`` (bool, int, float, str; a comma list for tuples,
    and for a float default that may also be a per-channel tuple); ``None`` defaults keep the text (a layer name),
    except the words true / false / yes / no, which are booleans there too (``agme``'s ``augment=None`` means
    "decided by the recovery", and a user may still set it), and a JSON object ``{...}``, which is a dict there
    (``agme``'s ``recover_params={"gen_steps": 30}``)."""
    if default is None and text.lower() in ("true", "false", "yes", "no"):
        return text.lower() in ("true", "yes")
    if (default is None or isinstance(default, dict)) and text.startswith("{"):
        try:
            return json.loads(text)  # a text that opens with "{" and parses is an object
        except ValueError as exc:
            raise ValueError(f"{flag} {key}={text!r}: not a JSON object ({exc})") from None
    try:
        if isinstance(default, bool):
            if text.lower() not in ("true", "false", "1", "0", "yes", "no"):
                raise ValueError
            return text.lower() in ("true", "1", "yes")
        if isinstance(default, int):
            return int(text)
        if isinstance(default, float):
            return tuple(float(v) for v in text.split(",")) if "," in text else float(text)
        if isinstance(default, tuple):
            return tuple(type(default[0])(v) if default else float(v) for v in text.split(","))
    except ValueError:
        raise ValueError(f"{flag} {key}={text!r}: {owner}'s {key} expects a {type(default).__name__}, "
                         f"like {default!r}") from None
    if isinstance(default, str) and "," in text and key == "position":
        return tuple(int(v) for v in text.split(","))
    return text


def parse_params(valid: dict[str, Any], owner: str, pairs: Sequence[str] | None, flag: str) -> dict[str, Any]:
    """``["size=5", "position=random"]`` -> ``{"size": 5, "position": "random"}``, typed from ``valid`` (the
    constructor keywords and defaults of ``owner``, a registered attack or defense); an unknown key or a malformed
    pair raises naming ``flag`` and listing the valid keys. The constructor itself then validates the values."""
    out: dict[str, Any] = {}
    for pair in pairs or []:
        key, sep, text = pair.partition("=")
        key = key.strip()
        if not sep or not key:
            raise ValueError(f"{flag} must be KEY=VALUE, got {pair!r}")
        if key not in valid:
            raise ValueError(f"{flag} {key!r} is not a parameter of {owner}; valid keys: {', '.join(valid)}")
        out[key] = _parse_value(text.strip(), valid[key], key, owner, flag)
    return out


def param_pairs(params: dict[str, Any]) -> list[str]:
    """The inverse of :func:`parse_params`: ``{"epochs": 3, "recover_params": {"gen_steps": 5}}`` ->
    ``["epochs=3", 'recover_params={"gen_steps": 5}']``, the ``KEY=VALUE`` texts of ``--defense-param`` (tuples
    as comma lists, dicts as JSON objects)."""
    def text(v: Any) -> str:
        if isinstance(v, dict):
            return json.dumps(v, sort_keys=True)
        if isinstance(v, (tuple, list)):
            return ",".join(str(x) for x in v)
        return str(v)

    return [f"{k}={text(v)}" for k, v in params.items()]


def parse_attack_params(attack: str, pairs: Sequence[str] | None) -> dict[str, Any]:
    """``--attack-param`` pairs for a registered attack (:func:`parse_params`)."""
    sig = inspect.signature(ATTACKS.get(attack))
    valid = {k: p.default for k, p in sig.parameters.items()
             if k != "image_shape" and p.default is not inspect.Parameter.empty}
    return parse_params(valid, attack, pairs, "--attack-param")


def parse_defense_params(defense: str, pairs: Sequence[str] | None, flag: str = "--defense-param") -> dict[str, Any]:
    """``--defense-param`` pairs for a registered defense (:func:`parse_params`, keywords from
    :func:`~unlearnlib.defenses.base.settable_params`)."""
    return parse_params(settable_params(defense), defense, pairs, flag)


def parse_grid_params(pairs: Sequence[str] | None) -> dict[str, dict[str, Any]]:
    """``["agme-bdk:layers=auto", "agme-bdk:mu=3"]`` -> ``{"agme-bdk": {"layers": "auto", "mu": 3.0}}`` (each value
    typed from its defense's signature: :func:`parse_defense_params`)."""
    grouped: dict[str, list[str]] = {}
    for pair in pairs or []:
        name, sep, rest = pair.partition(":")
        if not sep or not name.strip() or "=" not in rest:
            raise ValueError(f"--defense-param must be DEFENSE:KEY=VALUE, got {pair!r}")
        grouped.setdefault(name.strip(), []).append(rest)
    return {name: parse_defense_params(name, kv, f"--defense-param {name}:") for name, kv in grouped.items()}
