"""unlearnlib: backdoor attacks on image classifiers and the unlearning defenses that remove them.

The package behind the executable book. Public entry points:

- :mod:`unlearnlib.data`      datasets and the attacker / test / defender split
- :mod:`unlearnlib.models`    the model registry (small CNN, PreAct-ResNet18)
- :mod:`unlearnlib.attacks`   triggers (BadNets, Blended, TrojanNN, IMC, WaNet) and poisoning
- :mod:`unlearnlib.train`     the one training loop
- :mod:`unlearnlib.edit`      the one closed-form layer edit (AGME's; the repair step solves with it too)
- :mod:`unlearnlib.metrics`   acc, asr, target_acc, ra, asr_floor, der
- :mod:`unlearnlib.zoo`       the on-disk cache of trained models
- :mod:`unlearnlib.experiment` scenarios (clean + attacked model) and defense runs
"""

__version__ = "0.1.0"
