"""Layer 4, trigger recovery: what a defender without backdoor knowledge reconstructs from the model alone.
Imports the layers below it only (core, data, models, ml).

- :mod:`.networks`, :mod:`.stacked`, :mod:`.generated`  MESA's generator and MINE, trained K at a time, and the
  trigger distribution they define
- :mod:`.mesa`            max-entropy trigger generator training (MESA / BAERASE)
- :mod:`.target_search`   one generator per class; the outlying class is the target (BAERASE's stage 1)
- :mod:`.neural_cleanse`  per-class mask + pattern optimisation with the MAD anomaly index
- :mod:`.anomaly`         the (signed) MAD anomaly index both methods flag the target with
"""

from .anomaly import anomaly_index
from .generated import GeneratedTrigger, TriggerEnsemble
from .mesa import Job, train_generator, train_generators
from .neural_cleanse import NeuralCleanseResult, neural_cleanse
from .target_search import KEEP_RATE, PATCH_SIZES, Recovery, SearchResult, proxy_rate, recover, search_target

__all__ = ["KEEP_RATE", "PATCH_SIZES", "GeneratedTrigger", "Job", "NeuralCleanseResult", "Recovery", "SearchResult",
           "TriggerEnsemble", "anomaly_index", "neural_cleanse", "proxy_rate", "recover", "search_target",
           "train_generator", "train_generators"]
