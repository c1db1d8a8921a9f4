"""Named, documented presets. Notebooks pick one through their papermill ``profile`` parameter.

- ``quick``: CPU, mnist5k (offline), the small CNN, a few epochs: every chapter in seconds to a minute. WaNet's
  backdoored model trains longer (``attack_train``; see ``WANET_EPOCHS``), and longer again where that does not
  plant it (``attack_retry``; see ``WANET_RETRY_EPOCHS``).
- ``full``: GPU with internet: torchvision CIFAR-10, PreAct-ResNet18, BackdoorBench-like training.
- ``smoke``: CPU, offline: the ``full`` code path at toy size -- 3x32x32 colour images (``synth32``),
  PreAct-ResNet18 at 1/16 width (``preact-resnet18-w4``: BatchNorm, same layer names), one epoch. CI executes
  every chapter under it (chapter 8 on one grid cell, chapter 1's asr map and chapter 7's cost table coarser and
  smaller: chapter parameters, ``tools/book.py``'s ``PROFILE_PARAMETERS``); its numbers are not results (the
  book's glued numbers are range-checked under ``quick`` only).
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
# a pixel (0.2-0.3 px on average on 28x28) while its noise mode jitters other images by up to half a pixel at their
# true label; telling the two apart takes far longer than the 10 epochs that plant a patch. Measured on seed 0
# (same lr, cosine decay over the whole run): asr 6% after 10 epochs, 72% after 20, 93% after 30, 97% after 40,
# and with 40 epochs seed 1 stayed at 89%; 60 epochs keep the learning rate high long enough on every seed (the
# reference code trains MNIST for 1000 epochs). WaNet controls the poisoned model's training, so a longer schedule
# is the attacker's choice, not a weaker attack. Cost: 6x the epochs of a quick model, once per seed (cached).
WANET_EPOCHS = 60

# [ours] ... and WaNet's attacker checks its own work. The robustness grid's other architectures showed that 60 epochs
# are the CNN's budget, not every network's: on grid seed 1 the WaNet backdoors of LeNet-5 and of the CNN at 1%
# poison did not plant (asr 3.9% g1c006, 8.2% g1c045 on LeNet-5, 40.2% g1c047 on the CNN) and planted with 200 epochs
# (96.0, 99.0, 99.4% at accuracy 97.2, 96.3, 97.0%); the MLP's did not plant either way (g1c008: 18.7% after 60,
# 17.0% after 200: it cannot tell the exact warp from the noise mode's). An attacker who controls training does not
# ship an unplanted backdoor, so an attacked model whose own check fails (``Attack.planted_rate``: its training
# images of the other classes, warped, below ``PLANTED_ASR``) is trained again from the start for
# ``WANET_RETRY_EPOCHS``, and the try the check rates higher is kept. Where 60 epochs plant (every chapter's CNN at 10%
# poison: checks 99.1, 98.5, 98.3% on seeds 0-2) nothing changes. The check tracks the test asr (grid seed 1's WaNet
# cells: 0.5 / 3.9%, 2.1 / 8.2%, 38.1 / 40.2%, 93.2 / 91.9%, ...). Measured on the held-out grid (``bench --grid
# robustness --cells 60 --grid-seed 1 --defenses agme-bdk agme-bdk+repair agme agme+repair agme-repair baerase
# baerase+repair``; the 52 cells whose model is not retried gave bit-identical records, checked on 25 of them):
# 8 WaNet models retried, planted cells 41 -> 44; success agme-bdk 46 -> 46, agme-bdk+repair 48 -> 48, agme 24 -> 25,
# agme-repair 30 -> 31, agme+repair 29 -> 30, baerase 10 -> 9, baerase+repair 22 -> 23 of 60. The blind edits now
# fail LeNet-5's g1c006 (72-78% asr left, where they had "removed" a backdoor at 3.9%) and succeed on g1c045 and
# g1c047. The MLP's retried models (kept on g1c008, g1c014, g1c019, g1c055: their checks higher, their test asr
# 17-22%) lose more of the target class to the edit with backdoor knowledge: ``agme-bdk+repair`` keeps the target
# within 3 points on 56 cells instead of 58 (g1c008, g1c019: 5 and 6 points); keeping the second try always (this
# rule's first version) gave the same counts.
WANET_RETRY_EPOCHS = 200

# Random-position BadNets (BAERASE's: a 3x3 random-value patch at a new position per image) does NOT plant here:
# measured at seed 0, 10% poison, small CNN: asr 37% / acc 94.6% with 10 epochs, 44% / 94.0% with 30; with the
# poisoned images' patches pasted at fresh positions every epoch (an on-the-fly transform) 39% / 94.6% (10 epochs),
# 56% / 92.1% (30), 62% / 89.6% (60); fresh positions and fresh poisoned images every epoch 42% / 95.1% (10), 61% /
# 94.5% (30). Longer training buys asr with accuracy. Chapter 1 shows why (``metrics.asr_by_position``): the patch
# fires on the blank margin and not where the digits are, and the model fits about half of its own poisoned images.
# Other patterns at a random position, seed 0, 10 epochs: checkerboard 88% / 96.2%, white 49% / 95.2%. Each poisoned
# image repeated at fresh positions in the training set (an attacker who controls training; 10 epochs): 4 copies
# 54% / 88.5%, 8 copies 62% / 84.8%, 4 copies fine-tuned from the clean model 53% / 88.1% (measured for issue 9).
# Batch size 16 (10 epochs) 43% / 94.4%, 32 (20 epochs) 44% / 93.9%, SGD lr 0.05 wd 5e-4 (30 epochs) 35% / 94.4%,
# Adam lr 1e-3 wd 1e-4 (30 epochs) 41% / 94.0%; the CNN at twice and four times its width 43% / 95.3%, 45% / 95.3%
# (all seed 0, this stop of issue 9).
# Why none could: more poison buys it asr only with accuracy (seed 0 / seed 1, 10 epochs): 25% of the images
# poisoned 53.7 / 54.8% asr at 87.8 / 88.6% acc, 50% 72.3 / 76.9% at 70.6 / 70.7% (the clean model 96.8%); a
# checkerboard at the same random positions plants at 25% (98.8 / 96.6% at 96.1 / 95.6%), a white square does not
# (50%: 78.0 / 80.0% at 77.5 / 75.6%). The network cannot tell a patch of grey levels over a stroke from the stroke:
# what holds the attack back is what the network can tell apart, which no schedule above changed, so issue 9's bar
# (asr >= 90% at acc >= 95%) is out of our reach for this trigger on mnist5k; chapter 1 ("The patch, or the
# training?") runs the sweep. (A two-class detector trained from scratch to find the
# patch was tried as a bound and dropped: it stayed at chance on most seeds even for the checkerboard, which plants.)
# So no ``attack_train`` entry is set for it: we found no training change that plants it without costing accuracy.

QUICK = PROFILES.register("quick")(Profile(
    name="quick", dataset="mnist5k", model="cnn", epochs=10, batch_size=64, lr=2e-3, optimizer="adam",
    weight_decay=0.0, augment="none",
    attack_params={"badnets": {"size": 3}, "blended": {"alpha": 0.2}},
    attack_train={"wanet": {"epochs": WANET_EPOCHS}}, attack_retry={"wanet": {"epochs": WANET_RETRY_EPOCHS}},
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
