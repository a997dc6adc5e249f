"""What a run may choose by when groups (drives) are held out: the selection / confirmation rules of the protocol.

Under ``data.holdout`` the val role is the held-out drive. Anything picked by its score, a best-by-val
checkpoint, an early stop, a sweep's objective, makes that score optimistic, so by default:

- no best-by-val checkpoint is written (``last.ckpt``, the end of the schedule, is what gets scored) and early
  stopping on a val metric is refused, unless ``select_on_holdout=true`` asks for them;
- a sweep (a Hydra multirun with ``optimized_metric``) may optimise only the dataset's selection groups
  (`tconvseg.data.DatasetInfo.selection_groups`, CamVid: 0006R0), and only the end-of-schedule metric;
- the confirmation groups (CamVid: 0016E5) are never chosen on, ``select_on_holdout`` or not.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from lightning.pytorch.callbacks import EarlyStopping, ModelCheckpoint

from tconvseg.data import DatasetInfo
from tconvseg.training.builders import ConfigError


def _monitors_val(callback: Any) -> bool:
    monitor = getattr(callback, "monitor", None)
    return isinstance(monitor, str) and monitor.startswith("val/")


def check_selection(held_out: Sequence[str] | None, info: DatasetInfo, optimized_metric: str | None, sweep: bool, select_on_holdout: bool) -> None:
    """Refuse a choice by a held-out drive that the protocol does not allow.

    Args:
        held_out: the held-out groups (``None``: no holdout, nothing to check).
        info: the dataset's info (its selection and confirmation groups).
        optimized_metric: what the run returns to a sweeper (``None``: nothing).
        sweep: whether this run is a job of a Hydra multirun (a sweeper reads ``optimized_metric``).
        select_on_holdout: ``select_on_holdout=true``: a best-by-val checkpoint / early stop on the held-out drive asked for.

    Raises:
        ConfigError: naming the option and the groups, and saying what was expected.
    """
    if not held_out:
        return
    confirming = [g for g in held_out if g in info.confirmation_groups]
    if select_on_holdout and confirming:
        raise ConfigError(
            f"select_on_holdout=true with data.holdout holding out {confirming}, the confirmation group(s) of {info.name!r}: they "
            f"are never chosen on (no best checkpoint, no early stop). Expected select_on_holdout=false"
        )
    if not (sweep and optimized_metric):
        return
    if confirming or (info.selection_groups and not set(held_out) <= set(info.selection_groups)):
        raise ConfigError(
            f"a sweep optimising optimized_metric={optimized_metric} with data.holdout holding out {list(held_out)}: under a "
            f"holdout a sweep may optimise only the selection group(s) {list(info.selection_groups)} of {info.name!r} "
            f"(confirmation: {list(info.confirmation_groups)}, never chosen on). Expected data.holdout_groups="
            f"{list(info.selection_groups)} (experiment=protocol_select_steps hparams_search=drive_holdout_optuna)"
        )
    if optimized_metric.startswith("best/") and not select_on_holdout:
        raise ConfigError(
            f"optimized_metric={optimized_metric} under data.holdout: no best-by-held-out checkpoint is written (picking "
            f"one would tune to the held-out drive), so there is no best/ metric. Expected optimized_metric=val/mIoU, the "
            f"held-out drive at the end of the schedule (hparams_search=drive_holdout_optuna)"
        )


def without_held_out_selection(callbacks: list[Any], held_out: Sequence[str] | None, select_on_holdout: bool) -> tuple[list[Any], list[str]]:
    """``(callbacks, what was left out)``: under a holdout, best-by-val checkpoints are left out unless asked for.

    Raises:
        ConfigError: an early stop on a val metric under a holdout, unless ``select_on_holdout``.
    """
    if not held_out or select_on_holdout:
        return callbacks, []
    for callback in callbacks:
        if isinstance(callback, EarlyStopping) and _monitors_val(callback):
            raise ConfigError(
                f"early stopping on {callback.monitor} with data.holdout holding out {list(held_out)}: the stop would be "
                f"chosen by the held-out drive's score. Expected no early stopping under a holdout (callbacks=default), or "
                f"select_on_holdout=true to choose on a selection drive knowingly"
            )
    dropped = [c for c in callbacks if isinstance(c, ModelCheckpoint) and _monitors_val(c)]
    kept = [c for c in callbacks if not any(c is d for d in dropped)]
    return kept, [f"{type(c).__name__}(monitor={c.monitor})" for c in dropped]
