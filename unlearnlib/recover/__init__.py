"""Trigger recovery: what a defender without backdoor knowledge reconstructs from the model alone.

- :mod:`unlearnlib.recover.mesa`            max-entropy trigger generator (MESA / BAERASE) and MINE
- :mod:`unlearnlib.recover.target_search`   one generator per class; the outlying class is the target
- :mod:`unlearnlib.recover.neural_cleanse`  per-class mask + pattern optimisation with the MAD anomaly index
- :mod:`unlearnlib.recover.anomaly`         the (signed) MAD anomaly index both methods flag the target with
"""
