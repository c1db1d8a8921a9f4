"""unlearnlib: backdoor attacks on image classifiers and the unlearning defenses that remove them.

The package behind the executable book. Everything a user needs is importable from here::

    from unlearnlib import make_scenario, run_defense

    sc = make_scenario("quick", "badnets", seed=0)   # clean + backdoored model (cached on disk)
    run = run_defense(sc, "agme-bdk", unseen=10)     # any registered defense
    print(run.record["before"]["asr"], run.record["after"]["asr"])

Figures and tables are :mod:`unlearnlib.display`. The package is layered; each layer imports only those below it:
``core`` (registries, checks, device, cache, memo, weight files) < ``data`` and ``models`` < ``ml`` (triggers,
training, metrics, the edit) < ``attacks`` < ``recovery`` < ``defenses`` < ``experiment`` (profiles, scenarios,
runs) < ``evaluation`` (the success rule, the grids, benchmarks) < ``display`` < ``cli``.
"""

from .attacks import ATTACKER_ASR, Attack, make_trigger
from .core.cache import cache_dir
from .core.device import default_threads
from .core.memo import RecoveryMemo
from .core.registry import ATTACKS, DATASETS, DEFENSES, MODELS
from .core.version import __version__
from .core.weights import load_weights, save_weights
from .data import Data, DatasetUnavailable, Split, load_dataset, save_image_folder
from .defenses import Defense, DefenseResult, get_defense, repairable
from .defenses.agme_repair import repair_edit
from .defenses.baerase import BAErase, sweep, unlearn
from .evaluation import rule
from .evaluation.cells import load_cells
from .evaluation.comparison import speedups
from .evaluation.comparison import summarise as summarise_grid
from .evaluation.detection import clean_summary, gated_success, roc_points, roc_table
from .evaluation.evidence import case_facts, rerun_stored, rerun_summary
from .evaluation.evidence import load as load_evidence
from .evaluation.grid import grid_record, run_grid
from .evaluation.reactivation import Retuning, reactivation, references, summarise_reactivation
from .evaluation.reference import published_table
from .evaluation.robustness import DEFAULT_CELLS, failure_cases, run_robustness, sample_cells, success_by
from .evaluation.robustness import summarise as summarise_robustness
from .evaluation.scaling import machine, run_scaling
from .experiment import (
    Profile,
    Scenario,
    apply_defense,
    clean_victim,
    defend_checkpoint,
    export_scenario,
    get_profile,
    make_scenario,
    play,
    run_defense,
    sample_efficiency,
    spec_scenario,
    strength_curve,
)
from .experiment.params import param_pairs
from .ml.edit import edit_layers
from .ml.metrics import asr_by_position, attack_rate, der, evaluate, logits, per_class_accuracy, predict
from .ml.path_aware import extrapolate, path_aware_finetune
from .ml.train import DivergenceError, train
from .ml.triggers import Trigger, apply_trigger, load_trigger, save_trigger
from .models import build_model, get_layer
from .recovery import KEEP_RATE, PATCH_SIZES, neural_cleanse, proxy_rate, recover, search_target, train_generator

__all__ = [
    "__version__", "apply_defense", "apply_trigger", "asr_by_position", "Attack", "attack_rate", "ATTACKER_ASR",
    "ATTACKS", "BAErase", "build_model", "cache_dir", "case_facts", "clean_summary", "clean_victim", "Data", "DATASETS",
    "DatasetUnavailable", "DEFAULT_CELLS", "default_threads", "defend_checkpoint", "Defense", "DefenseResult",
    "DEFENSES", "der", "DivergenceError", "edit_layers", "evaluate", "export_scenario", "extrapolate", "failure_cases",
    "gated_success", "get_defense", "get_layer", "get_profile", "grid_record", "KEEP_RATE", "load_cells",
    "load_dataset", "load_evidence", "load_trigger", "load_weights", "logits", "machine", "make_scenario",
    "make_trigger", "MODELS", "neural_cleanse", "param_pairs", "PATCH_SIZES", "path_aware_finetune",
    "per_class_accuracy", "play", "predict", "Profile", "proxy_rate", "published_table", "reactivation", "recover",
    "RecoveryMemo", "references", "repair_edit", "repairable", "rerun_stored", "rerun_summary", "Retuning",
    "roc_points", "roc_table", "rule", "run_defense", "run_grid", "run_robustness", "run_scaling", "sample_cells",
    "sample_efficiency", "save_image_folder", "save_trigger", "save_weights", "Scenario", "search_target",
    "spec_scenario", "speedups", "Split", "strength_curve", "success_by", "summarise_grid", "summarise_reactivation",
    "summarise_robustness", "sweep", "train", "train_generator", "Trigger", "unlearn"
]
