"""Every chapter executes top to bottom under the ``smoke`` profile: the ``full`` code path (3x32x32 colour
images, PreAct-ResNet18 with BatchNorm, colour triggers and figures) at toy size, offline, on the CPU.

The executed copies go to ``_build/smoke`` (the book's own stay in ``_build/executed``); the glued numbers are
range-checked under ``quick`` only (the smoke numbers are not results).
"""

from __future__ import annotations

import json

import pytest

import book

pytestmark = pytest.mark.book  # it executes every chapter (under the smoke profile)


def test_every_chapter_executes_under_the_smoke_profile():
    dest = book.BUILD / "smoke"
    times = book.execute(profile="smoke", dest=dest)
    assert set(times) == {nb.stem for nb in book.notebooks()}
    print(f"smoke execution: {sum(times.values()):.1f} s ({times})")
    # the colour figures were drawn: chapter 1's trigger gallery holds PNG images of 3-channel data
    cells = json.loads(book.executed_path(book.ROOT / "book" / "01_backdoor_attacks.ipynb", dest).read_text())["cells"]
    pngs = [o for c in cells for o in c.get("outputs", []) if "image/png" in o.get("data", {})]
    assert pngs, "chapter 1 drew no figure under smoke"
    params = next(c for c in cells if "parameters" in c.get("metadata", {}).get("tags", []))
    injected = next(c for c in cells if "injected-parameters" in c.get("metadata", {}).get("tags", []))
    assert "smoke" in "".join(injected["source"]) and params is not injected
    # the smoke run's own chapter parameters reached each chapter's injected cell, and the code that uses them:
    # chapter 8 ran one failure case again, chapter 1 drew its asr map every 8 pixels, chapter 7 timed the 1/8 ResNet
    for stem, given in book.PROFILE_PARAMETERS["smoke"].items():
        cells = json.loads(book.executed_path(book.ROOT / "book" / f"{stem}.ipynb", dest).read_text())["cells"]
        injected = next(c for c in cells if "injected-parameters" in c.get("metadata", {}).get("tags", []))
        names: dict = {}
        exec("".join(injected["source"]), {}, names)  # papermill's own assignments, e.g. cells = 1
        assert {k: names[k] for k in given} == given, stem
    glued = {stem: book.read_glue(book.executed_path(book.ROOT / "book" / f"{stem}.ipynb", dest))
             for stem in ("01_backdoor_attacks", "07_comparison", "08_does_it_hold")}
    assert glued["08_does_it_hold"]["ch08_cases"] == 1
    assert glued["01_backdoor_attacks"]["ch01_anywhere_stride"] == 8
    assert "d = 64" in glued["07_comparison"]["ch07_resnet_edit_layer"]  # 1/8 width: 64 features, not 512


def test_profile_parameters_name_real_profiles_chapters_and_parameters():
    """Every parameter a profile's run gives a chapter is assigned in that chapter's ``parameters`` cell: a typo
    would run the chapter's own value silently (papermill injects any name)."""
    import ast

    from unlearnlib.experiment.profiles import PROFILES

    chapters = {nb.stem: nb for nb in book.notebooks()}
    for profile, per_chapter in book.PROFILE_PARAMETERS.items():
        assert profile in PROFILES.names()
        for stem, params in per_chapter.items():
            cells = json.loads(chapters[stem].read_text())["cells"]
            source = "".join(next(c for c in cells if "parameters" in c["metadata"].get("tags", []))["source"])
            names = {t.id for node in ast.parse(source).body if isinstance(node, ast.Assign)
                     for t in node.targets if isinstance(t, ast.Name)}
            assert set(params) <= names - {"profile"}, (profile, stem, sorted(names))


def test_smoke_profile_settings_name_real_attacks_and_arguments():
    """The smoke profile's reductions are real names: a typo would silently run the full settings (or fail late)."""
    import inspect

    import unlearnlib.attacks  # noqa: F401  (registers every attack)
    from unlearnlib.core.registry import ATTACKS
    from unlearnlib.experiment.profiles import PROFILES, get_profile
    from unlearnlib.recovery.neural_cleanse import neural_cleanse
    from unlearnlib.recovery.target_search import recover

    smoke = get_profile("smoke")
    assert smoke.grid_attacks and set(smoke.grid_attacks) <= set(ATTACKS.names())
    for name in PROFILES.names():
        if name != "smoke":
            assert get_profile(name).grid_attacks is None  # the book's grid covers every attack
    functions = {"neural_cleanse": neural_cleanse, "recover": recover}
    assert set(smoke.recovery_params) == set(functions)
    for key, params in smoke.recovery_params.items():
        assert set(params) <= set(inspect.signature(functions[key]).parameters), key
    for attack, params in smoke.attack_params.items():
        assert set(params) <= set(inspect.signature(ATTACKS.get(attack)).parameters), attack
