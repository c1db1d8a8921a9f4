"""Layer 2, the machine-learning core: triggers (:mod:`.triggers`), the one training loop (:mod:`.train`), the
metrics of METHODS.md (:mod:`.metrics`) and the one closed-form layer edit (:mod:`.edit`). Imports only
:mod:`unlearnlib.core`, :mod:`unlearnlib.data` and :mod:`unlearnlib.models`."""
