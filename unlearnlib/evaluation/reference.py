"""Published numbers from other setups, for side-by-side display in the comparison chapter.

These are *not* computed here: they are transcribed from the papers and benchmarks named in each row (via
shared/METHODS.md), with their own datasets, models and budgets. The chapter labels them as such.
"""

from __future__ import annotations

import pandas as pd

# (source, setting, method, acc before %, asr before %, acc after %, asr after %)
PUBLISHED: tuple[tuple[str, str, str, float | None, float | None, float | None, float | None], ...] = (
    ("BackdoorBench", "CIFAR-10, PreAct-ResNet18, BadNets", "Neural Cleanse", 91.32, 95.03, 89.05, 1.27),
    ("BackdoorBench", "CIFAR-10, PreAct-ResNet18, BadNets", "fine-tuning", 91.32, 95.03, 89.96, 1.48),
    ("BackdoorBench", "CIFAR-10, PreAct-ResNet18, BadNets", "NAD", 91.32, 95.03, 89.87, 2.14),
    ("BackdoorBench", "CIFAR-10, PreAct-ResNet18, BadNets", "ANP", 91.32, 95.03, 84.17, 0.73),
    ("BackdoorBench", "CIFAR-10, PreAct-ResNet18, BadNets", "fine-pruning", 91.32, 95.03, 91.31, 57.13),
    ("ART", "MNIST", "Neural Cleanse unlearning", 96.47, None, 54.14, 5.19),
)
MESA_ASR_RANGE = {"before": (92.3, 99.8), "after": (1.2, 5.9), "setting": "CIFAR-10, 3x3 triggers"}


def published_table() -> pd.DataFrame:
    """The published rows as a DataFrame (percent; empty where the source does not give the number)."""
    cols = ["source", "setting", "method", "acc before (%)", "asr before (%)", "acc after (%)", "asr after (%)"]
    return pd.DataFrame(PUBLISHED, columns=cols)
