"""``agme``: activation-guided model editing (Hsieh et al. 2024) without backdoor knowledge: the trigger is
recovered (the BAERASE generator, :func:`unlearnlib.recovery.recover`, or Neural Cleanse), then the edit of
:class:`~.agme_bdk.AgmeBDK` removes it."""

from __future__ import annotations

import time
from typing import Any

from torch import nn

from ..core.checks import check_number, check_positive_int
from ..core.registry import DEFENSES
from ..data import Data
from ..ml.edit import SHIFTS
from ..ml.triggers import TriggerArg
from ..recovery.neural_cleanse import neural_cleanse
from ..recovery.target_search import SMOKE_RECOVER, check_keep, recover
from .agme_bdk import AgmeBDK
from .base import DefenseResult


@DEFENSES.register("agme")
class Agme(AgmeBDK):
    """AGME without backdoor knowledge: recover the trigger (the BAERASE generator, or Neural Cleanse), then edit.

    No repair: the recovered trigger carries target-class features, so the target class may be edited away
    (``agme+repair`` and ``agme-repair`` give it back). Defaults *[ours]*:

    - ``recover="baerase"``: the max-entropy generator (:func:`~unlearnlib.recovery.target_search.recover`) also
      tries a blend and a warp, keeps the kinds that fire; Neural Cleanse (``"nc"``) only models patch triggers
      ``(1 - m) x + m p`` with a small mask, and on Blended its patch shortcut leaves the blend in place (chapter 5).
    - ``mu=10``: a recovered trigger is only an approximation, so the edit stays closer to the original weights.
    - ``augment=None``: nine shifted copies of each unseen image (:data:`SHIFTS`) with the generator's recovery,
      one key per image with Neural Cleanse's.
    - ``layers=None`` edits the *last* hidden Linear (:attr:`hidden`; ``agme-bdk`` edits each in turn): on the MLP
      the first reads raw pixels, where the edit fits the approximation rather than the backdoor.
    - ``keep_kinds="all"``: every recovered trigger kind (patch, blend, warp) whose images reach the target on at
      least :data:`~unlearnlib.recovery.target_search.KEEP_RATE` of the held-out images, not only the one that
      reaches it most often: a faint blend can win the choice on a patch backdoor and leave the patch in place.
    - 50 unseen samples (``default_unseen``).

    ``recover_params`` are passed to :func:`~unlearnlib.recovery.target_search.recover` (``gen_steps``, ...);
    ``nc_steps`` and ``nc_lam`` to Neural Cleanse. Example::

        result = Agme()(model, unseen, num_classes=10)  # result.trigger, result.target: what it recovered

    Why these defaults: docs/decisions/0006-agme-blind-edit-defaults.md.
    """

    name = "agme"
    colour = "sky blue"
    smoke_params = {"recover_params": SMOKE_RECOVER, "nc_steps": 20}
    recovers_trigger = True
    default_unseen = 50
    shifts = SHIFTS  # with ``augment``: nine keys per sample
    hidden = "last"  # a recovered trigger is edited where it generalises (:func:`default_edit_layer`)
    needs_trigger = False
    min_classes = 2

    def __init__(self, recover: str = "baerase", nc_steps: int = 100, nc_lam: float = 0.1, mu: float = 10.0,
                 augment: bool | None = None, layers: str | list[str] | None = None, keep_kinds: str = "all",
                 recover_params: dict[str, Any] | None = None, **kw: Any) -> None:
        if recover not in ("nc", "baerase"):
            raise ValueError(f"recover must be 'nc' (Neural Cleanse) or 'baerase' (MESA generator), got {recover!r}")
        super().__init__(layers=layers, mu=mu, augment=recover == "baerase" if augment is None else augment, **kw)
        if recover_params is not None and not isinstance(recover_params, dict):
            raise ValueError(f"recover_params must be a dict of arguments of unlearnlib.recovery.target_search.recover "
                             f"(gen_steps, search_steps, ...), got {recover_params!r}")
        self.recover, self.recover_params = recover, {"keep": check_keep(keep_kinds, "keep_kinds"),
                                                      **(recover_params or {})}
        self.nc_steps, self.nc_lam = check_positive_int(nc_steps, "nc_steps"), check_number(nc_lam, "nc_lam")

    def recover_trigger(self, model: nn.Module, defender: Data, target: int | None,
                        num_classes: int) -> tuple[TriggerArg, int, dict[str, Any]]:
        """(trigger, target, info) from the chosen recovery method."""
        if self.recover == "baerase":
            train, heldout = defender.holdout_split(0.2, self.seed, "defender")
            # every core (docs/decisions/0012-cpu-speed.md)
            rec = recover(model, train, heldout, num_classes, target, seed=self.seed, progress=self.progress,
                          **self.recover_params)
            detected = target is not None or rec.search is None or bool(rec.search.outlier)
            return rec.trigger, int(rec.target), {"recover": "baerase", "recovered_target": int(rec.target),
                                                  "detected": detected, **rec.info(),
                                                  "recovery_seconds": rec.seconds}
        nc = neural_cleanse(model, defender, num_classes, steps=self.nc_steps, lam=self.nc_lam,
                            classes=None if target is None else [target], device=self.device, seed=self.seed,
                            progress=self.progress)
        return nc.trigger(nc.target), nc.target, {"recover": "nc", "recovered_target": nc.target,
                                                  "detected": nc.detected, "anomaly_index": nc.to_info()[
                                                      "nc_anomaly_index"], "mask_norms": nc.to_info()["nc_mask_norms"]}

    def run(self, model: nn.Module, defender: Data, *, trigger: Any, target: int | None,
            num_classes: int) -> DefenseResult:
        start = time.perf_counter()
        recovered, tgt, rinfo = self.recover_trigger(model, defender, target, num_classes)
        rinfo.setdefault("recovery_seconds", time.perf_counter() - start)
        out = self.edit(model, defender.x, recovered)
        info = {**self.hyperparameters(), **rinfo, **out, "known_target": target is not None, "repair_seconds": 0.0}
        return DefenseResult(model, info, recovered, tgt, detected=None if target is not None else rinfo["detected"])
