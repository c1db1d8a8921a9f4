"""The package's shape: layered folders that import only downward, no import cycles, no import of the package
inside a function, and a family member that needs nothing but its own file (README, "The package's layers")."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

import unlearnlib
from unlearnlib.core.registry import ATTACKS, DATASETS, DEFENSES, MODELS
from unlearnlib.display.style import PALETTE

PACKAGE = Path(unlearnlib.__file__).parent
# each folder's rank: a module may import its own folder and folders of a lower rank only
RANK = {"core": 0, "data": 1, "models": 1, "ml": 2, "attacks": 3, "recovery": 4, "defenses": 5, "experiment": 6,
        "evaluation": 7, "display": 8, "cli": 9}


def module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


MODULES = {module_name(p): p for p in sorted(PACKAGE.rglob("*.py"))}


def imports(name: str) -> list[tuple[str, bool]]:
    """``(imported unlearnlib module, inside a function?)`` for every import of the package by module ``name``."""
    path = MODULES[name]
    tree = ast.parse(path.read_text())
    parents = {c: n for n in ast.walk(tree) for c in ast.iter_child_nodes(n)}
    out = []
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom):
            base = name.split(".") if path.name == "__init__.py" else name.split(".")[:-1]
            base = base[: len(base) - node.level + 1] if node.level else []
            target = ".".join(base + ([node.module] if node.module else []))
            found = [f"{target}.{a.name}" if f"{target}.{a.name}" in MODULES else target for a in node.names]
        elif isinstance(node, ast.Import):
            found = [a.name for a in node.names]
        else:
            continue
        inside, up = False, node
        while up in parents:
            up = parents[up]
            inside = inside or isinstance(up, (ast.FunctionDef, ast.AsyncFunctionDef))
        for t in found:
            while t not in MODULES and "." in t:
                t = t.rsplit(".", 1)[0]
            if t.startswith("unlearnlib") and t != name:
                out.append((t, inside))
    return out


GRAPH = {name: sorted({t for t, _ in imports(name)}) for name in MODULES}


def rank(name: str) -> int | None:
    parts = name.split(".")
    return None if len(parts) == 1 or parts[1] == "__main__" else RANK[parts[1]]


def test_every_module_lives_in_a_layer_folder():
    loose = [n for n in MODULES if rank(n) is None and n not in ("unlearnlib", "unlearnlib.__main__")]
    assert not loose, f"modules outside the layer folders: {loose}"
    assert set(RANK) == {p.name for p in PACKAGE.iterdir() if (p / "__init__.py").exists()}


def test_imports_go_only_down_the_layers():
    wrong = [(a, b) for a, outs in GRAPH.items() for b in outs if rank(a) is not None and (
        rank(b) is None or rank(b) > rank(a) or (rank(b) == rank(a) and a.split(".")[1] != b.split(".")[1]))]
    assert not wrong, f"imports up or sideways across the layers: {wrong}"


def test_the_import_graph_has_no_cycle():
    state: dict[str, int] = {}
    cycle: list[str] = []

    def visit(n: str, path: list[str]) -> None:
        state[n] = 1
        for m in GRAPH[n]:
            if state.get(m) == 1 and not cycle:
                cycle.extend(path[path.index(m):] + [m])
            elif m not in state:
                visit(m, path + [m])
        state[n] = 2

    for n in GRAPH:
        if n not in state:
            visit(n, [n])
    assert not cycle, " -> ".join(cycle)


def test_no_import_of_the_package_inside_a_function():
    inside = [(n, t) for n in MODULES for t, f in imports(n) if f]
    assert not inside, inside


def test_the_graph_reader_sees_a_relative_import_and_a_function_import():
    """The checks above would pass on an empty graph: the reader finds what it must."""
    assert "unlearnlib.core.registry" in GRAPH["unlearnlib.attacks.badnets"]
    assert "unlearnlib.ml.triggers" in GRAPH["unlearnlib.attacks.base"]
    assert ("unlearnlib.core.cache", False) in imports("unlearnlib.data.splits")


@pytest.mark.parametrize("registry", [DATASETS, MODELS, ATTACKS, DEFENSES], ids=lambda r: r.kind)
def test_every_registered_member_comes_from_its_family_folder(registry):
    folder = {"dataset": "data", "model": "models", "attack": "attacks", "defense": "defenses"}[registry.kind]
    for name in registry:
        module = registry.get(name).__module__
        assert module.startswith(f"unlearnlib.{folder}."), (name, module)


def test_every_defense_carries_its_metadata_on_its_class():
    """What a plot, the smoke profile and the repair composition need of a defense is on its class."""
    for name in DEFENSES:
        cls = DEFENSES.get(name)
        assert cls.colour is None or cls.colour in PALETTE, (name, cls.colour)
        assert isinstance(cls.smoke_params, dict) and isinstance(cls.repairable, bool), name
        cls(**cls.smoke_params)  # its smoke settings are valid constructor arguments
        assert (f"{name}+repair" in DEFENSES) == cls.repairable, name
