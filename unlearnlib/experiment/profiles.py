"""Named, documented presets. Notebooks pick one through their papermill ``profile`` parameter.

- ``quick``: CPU, mnist5k (offline), the small CNN, a few epochs: every chapter in seconds to a minute. WaNet's
  backdoored model trains longer (``attack_train``; see ``WANET_EPOCHS``), and longer again where that does not
  plant it (``attack_retry``; see ``WANET_RETRY_EPOCHS``).
- ``full``: GPU with internet: torchvision CIFAR-10, PreAct-ResNet18, BackdoorBench-like training.
- ``smoke``: CPU, offline: the ``full`` code path at toy size -- 3x32x32 colour images (``synth32``),
  PreAct-ResNet18 at 1/16 width (``preact-resnet18-w4``: BatchNorm, same layer names), one epoch. CI executes
  every chapter under it (chapter 8 on one of its failure cases, chapter 1's asr map and chapter 7's cost table
  coarser and smaller: chapter parameters, ``tools/book.py``'s ``PROFILE_PARAMETERS``); its numbers are not
  results (the book's glued numbers are range-checked under ``quick`` only).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

from ..core.registry import DEFENSES, Registry
from ..defenses import Defense  # noqa: F401  (every defense registered: the smoke profile reads their smoke_params)
from ..recovery.target_search import SMOKE_RECOVER

PROFILES: Registry = Registry("profile")
TRAIN_KEYS = ("epochs", "batch_size", "lr", "optimizer", "weight_decay", "augment")


@dataclass(frozen=True)
class Profile:
    name: str
    dataset: str
    model: str
    epochs: int
    batch_size: int
    lr: float
    optimizer: str
    weight_decay: float
    augment: str
    target: int = 0
    poison_ratio: float = 0.1
    attack_params: dict[str, dict[str, Any]] = field(default_factory=dict)
    download: bool = False
    description: str = ""
    defense_params: dict[str, dict[str, Any]] = field(default_factory=dict)  # per defense, under the caller's
    recovery_params: dict[str, dict[str, Any]] = field(default_factory=dict)  # chapters' direct recovery calls
    grid_attacks: tuple[str, ...] | None = None  # the book's comparison grid; None: every registered attack
    attack_train: dict[str, dict[str, Any]] = field(default_factory=dict)  # per attack: its own training budget
    attack_retry: dict[str, dict[str, Any]] = field(default_factory=dict)  # per attack: its second try (below)

    def train_kwargs(self, attack: str | None = None) -> dict[str, Any]:
        """The training settings; for a backdoored model of ``attack``, with that attack's ``attack_train``
        overrides (an attack that controls training, like WaNet, may train longer than the clean model)."""
        kw = {k: getattr(self, k) for k in TRAIN_KEYS}
        return {**kw, **_checked(self.attack_train, "attack_train", attack)}

    def retry_kwargs(self, attack: str | None) -> dict[str, Any] | None:
        """The training settings (over :meth:`train_kwargs`) of the attacker's second try at planting ``attack``
        when the first left it unplanted by the attacker's own check (:meth:`unlearnlib.attacks.Attack.plant`);
        None: one try."""
        return _checked(self.attack_retry, "attack_retry", attack) or None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def _checked(table: dict[str, dict[str, Any]], name: str, attack: str | None) -> dict[str, Any]:
    """``table[attack]`` (empty for None or an attack without an entry), its keys checked against TRAIN_KEYS."""
    over = table.get(attack, {}) if attack is not None else {}
    unknown = sorted(set(over) - set(TRAIN_KEYS))
    if unknown:
        raise ValueError(f"{name}[{attack!r}] has unknown keys {unknown}; valid: {list(TRAIN_KEYS)}")
    return dict(over)


# [ours] WaNet's own training budget in quick: at the paper's k = 4, s = 0.5 the warp moves pixels by a fraction of
# a pixel while its noise mode jitters other images at their true label; telling the two apart takes far longer than
# the epochs that plant a patch. WaNet controls the poisoned model's training, so a longer schedule is the
# attacker's choice, not a weaker attack (the model is trained once per seed and cached).
# Why 60: docs/decisions/0010-wanet-training-budget.md.
WANET_EPOCHS = 60

# [ours] ... and WaNet's attacker checks its own work: 60 epochs are the CNN's budget, not every network's. An
# attacker who controls training does not ship an unplanted backdoor, so an attacked model whose own check fails
# (``Attack.planted_rate``: its training images of the other classes, warped, below ``ATTACKER_ASR``) is trained
# again from the start for ``WANET_RETRY_EPOCHS``, and the try the check rates higher is kept. Where 60 epochs plant
# nothing changes. Why 200: docs/decisions/0010-wanet-training-budget.md.
WANET_RETRY_EPOCHS = 200
# [ours] TrojanNN and IMC control the poisoned model's training too (it is fine-tuned from the clean model): where
# the profile's epochs leave the attacker's own check below ``ATTACKER_ASR``, it fine-tunes again for this many
# (docs/decisions/0004-attackers-check-their-work.md).
FINETUNE_RETRY_EPOCHS = 30

# Random-position BadNets (BAERASE's: a 3x3 random-value patch at a new position per image) does NOT plant here: no
# change of training we tried (longer, fresh positions, more copies, other batch sizes, optimisers or widths, more
# poison) planted it without costing accuracy; the network cannot tell a patch of grey levels over a stroke from the
# stroke. So no ``attack_train`` entry is set for it; chapter 1 ("The patch, or the training?") runs the sweep.
# The figures: docs/decisions/0011-random-position-badnets.md.

QUICK = PROFILES.register("quick")(Profile(
    name="quick", dataset="mnist5k", model="cnn", epochs=10, batch_size=64, lr=2e-3, optimizer="adam",
    weight_decay=0.0, augment="none",
    attack_params={"badnets": {"size": 3}, "blended": {"alpha": 0.2}},
    attack_train={"wanet": {"epochs": WANET_EPOCHS}},
    attack_retry={"wanet": {"epochs": WANET_RETRY_EPOCHS}, "trojannn": {"epochs": FINETUNE_RETRY_EPOCHS},
                  "imc": {"epochs": FINETUNE_RETRY_EPOCHS}},
    description=f"CPU, offline: mnist5k, small CNN, 10 epochs of Adam ({WANET_EPOCHS} for WaNet, "
                f"{WANET_RETRY_EPOCHS} where those do not plant).",
))

FULL = PROFILES.register("full")(Profile(
    name="full", dataset="cifar10", model="preact-resnet18", epochs=40, batch_size=256, lr=0.1, optimizer="sgd",
    weight_decay=5e-4, augment="crop-flip", download=True,
    attack_params={"badnets": {"size": 3}, "blended": {"alpha": 0.2}},
    description="GPU with internet: CIFAR-10, PreAct-ResNet18, 40 epochs of SGD (BackdoorBench-like).",
))


SMOKE = PROFILES.register("smoke")(Profile(
    name="smoke", dataset="synth32", model="preact-resnet18-w4", epochs=1, batch_size=16, lr=0.02, optimizer="sgd",
    weight_decay=5e-4, augment="none",
    # [ours] the smoke test runs the code, it does not plant or measure: a few trigger-optimisation steps each
    attack_params={"badnets": {"size": 3}, "blended": {"alpha": 0.2}, "trojannn": {"steps": 10},
                   "imc": {"trigger_steps": 2}},
    recovery_params={"neural_cleanse": {"steps": 20}, "recover": SMOKE_RECOVER},
    # [ours] chapter 7's grid on two attacks (a patch and the warp); every attack x defense on this model is
    # exercised by tests/test_full_path.py, and chapter 5 runs the grid on TrojanNN and WaNet
    grid_attacks=("badnets", "wanet"),
    # [ours] a few steps of each defense (its own ``smoke_params``): the smoke test runs the code, it does not measure
    defense_params={n: dict(DEFENSES.get(n).smoke_params) for n in DEFENSES.names() if DEFENSES.get(n).smoke_params},
    description="CPU, offline smoke test of the full path: synth32 colour images, PreAct-ResNet18 at 1/16 width, "
                "1 epoch of SGD (the backdoor is barely planted: the numbers are not results).",
))


def get_profile(name: str | Profile) -> Profile:
    return name if isinstance(name, Profile) else PROFILES.get(name)
