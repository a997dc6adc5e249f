"""Training for a wall-clock budget: a learning-rate schedule keyed on elapsed time, and a stop with
the final validation and checkpoint inside the budget.

An epoch-keyed schedule decays on time only on the machine it was tuned on: on a slower one the
``max_time`` cap cuts training before the learning rate has come down. `TimeBudget` keys the
schedule on the fraction of the budget already spent, so the decay completes at the stop whatever
the machine's speed, and the number of steps is whatever the machine manages.

The budget clock starts when ``train(cfg)`` starts, or at the ``started_at`` it is given: the
command line (``tconvseg-train`` / ``scripts/train.py``) passes the process's own start (Linux,
`process_started_at`), so imports and Hydra's start-up count too. ``train`` hands the start to
the callback (`TimeBudget.start_clock`). Data decoding, model building, the sanity check and
every validation always count. Later jobs of a Hydra multirun each count from their own start.

Resume: the time spent is stored in every checkpoint (the callback's state) and restored, so a
resumed run continues the schedule where the checkpoint left it; the time between that checkpoint
and the interruption is lost (not counted). A time-keyed run is not reproducible step for step --
how many steps fit before a given moment depends on the machine and its load -- so, unlike
epoch-keyed runs (``tconvseg.training.schedules.warmup_cosine``, the default), a resumed budgeted run does
not end bit-identical to an uninterrupted one.
"""

from __future__ import annotations

import logging
import math
import os
import time
from collections.abc import Callable, Mapping
from datetime import timedelta
from pathlib import Path
from typing import Any

import lightning as L

log = logging.getLogger(__name__)

#: The key of `TimeBudget`'s state in a checkpoint's ``callbacks``.
STATE_KEY = "TimeBudget"

def process_age() -> float:
    """Seconds since this process started (Linux), else 0."""
    try:
        fields = Path("/proc/self/stat").read_text().rsplit(")", 1)[1].split()
        started = int(fields[19]) / os.sysconf("SC_CLK_TCK")  # field 22: start time, clock ticks after boot
        return max(0.0, time.clock_gettime(time.CLOCK_BOOTTIME) - started)
    except (OSError, IndexError, ValueError, AttributeError):
        return 0.0


def process_started_at() -> float:
    """This process's start on the ``time.monotonic`` clock (now where the start cannot be read)."""
    return time.monotonic() - process_age()


def as_seconds(value: float | int | str | Mapping[str, float] | timedelta, key: str) -> float:
    """Seconds from a number, ``"DD:HH:MM:SS"`` / ``"HH:MM:SS"`` / ``"MM:SS"`` or a ``timedelta`` mapping
    (``{minutes: 15}``), the formats Lightning's ``max_time`` takes."""
    if isinstance(value, timedelta):
        seconds = value.total_seconds()
    elif isinstance(value, Mapping):
        seconds = timedelta(**value).total_seconds()
    elif isinstance(value, str):
        parts = value.split(":")
        try:
            numbers = [float(p) for p in parts]
        except ValueError:
            numbers = []
        if not 1 <= len(numbers) <= 4:
            raise ValueError(f"{key}={value!r} is not a duration; expected seconds, 'DD:HH:MM:SS' or {{minutes: 15}}")
        seconds = sum(n * f for n, f in zip(reversed(numbers), (1, 60, 3600, 86400)))
    else:
        seconds = float(value)
    if not math.isfinite(seconds) or seconds < 0:
        raise ValueError(f"{key}={value!r} is invalid; expected a non-negative duration")
    return seconds


def cosine_factor(progress: float, min_lr_ratio: float) -> float:
    """``1`` at ``progress=0`` down to ``min_lr_ratio`` at ``progress>=1``, along a half cosine."""
    progress = min(1.0, max(0.0, progress))
    return min_lr_ratio + (1 - min_lr_ratio) * 0.5 * (1 + math.cos(math.pi * progress))


class TimeBudget(L.Callback):
    """Schedules the learning rate on elapsed time and stops training before ``budget`` runs out.

    Every optimizer step gets ``lr = initial_lr * warm(step) * cosine(progress)``: linear warm-up
    over the first ``warmup_steps`` steps, times a half cosine from 1 to ``min_lr_ratio`` over
    ``progress``, the fraction of the training time (first step to the stop) already spent. The
    stop comes when the time spent reaches ``budget - reserve``; Lightning then runs a last
    validation and writes the checkpoints. ``reserve`` is the larger of the given one and
    ``margin * val_passes_after_stop`` times the longest validation (+ checkpoint) pass measured
    so far, so a slow machine stops earlier rather than overrunning (the cosine then steepens to end
    at the new stop; with a 60-minute budget that is a shift of a minute or two).

    Args:
        budget: the whole run's wall-clock budget (seconds, ``"HH:MM:SS"`` or ``{minutes: 60}``).
        warmup_steps: optimizer steps of linear warm-up.
        min_lr_ratio: the LR factor reached at the stop.
        reserve: time kept for what follows the stop, at least.
        val_passes_after_stop: validation passes after the stop: the final one, plus one when
            ``train(cfg)`` re-validates the best checkpoint (``validate_best=true``).
        margin: safety factor on the measured validation cost.
        clock: seconds, monotonic; tests inject a fake one. The budget starts when the callback is
            built, unless `start_clock` moves its start (``train`` does).

    The optimizer's ``initial_lr`` (set from ``lr`` at the first start, saved with the optimizer)
    is the peak LR. The model config must have no LR scheduler (``model.scheduler=null``).
    """

    def __init__(
        self,
        budget: float | str | Mapping[str, float],
        *,
        warmup_steps: int = 0,
        min_lr_ratio: float = 0.01,
        reserve: float | str | Mapping[str, float] = 60.0,
        val_passes_after_stop: int = 2,
        margin: float = 1.5,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.budget = as_seconds(budget, "budget")
        self.reserve = as_seconds(reserve, "reserve")
        if self.reserve >= self.budget:
            raise ValueError(f"TimeBudget reserve={self.reserve:g}s leaves no training time in budget={self.budget:g}s")
        if warmup_steps < 0 or not 0 <= min_lr_ratio <= 1:
            raise ValueError(f"TimeBudget warmup_steps={warmup_steps} and min_lr_ratio={min_lr_ratio}: expected >= 0 and in [0, 1]")
        self.warmup_steps = warmup_steps
        self.min_lr_ratio = min_lr_ratio
        self.val_passes_after_stop = val_passes_after_stop
        self.margin = margin
        self._clock = clock
        self._origin = clock()
        self._prior = 0.0  # time spent by earlier processes of this run (restored on resume)
        self._train_start: float | None = None  # budget time of the first training step
        self._val_cost = 0.0  # longest validation + checkpoint pass seen
        self._val_started: float | None = None
        self.done = False

    def start_clock(self, started_at: float) -> None:
        """Count the budget from ``started_at`` (a reading of this callback's clock), e.g. the process's start."""
        self._origin = started_at

    @property
    def state_key(self) -> str:
        return STATE_KEY

    def elapsed(self) -> float:
        """Seconds of the budget spent so far, earlier processes of a resumed run included."""
        return self._prior + self._clock() - self._origin

    @property
    def stop_at(self) -> float:
        """Budget time at which training stops (and the cosine reaches ``min_lr_ratio``)."""
        reserve = max(self.reserve, self.margin * self.val_passes_after_stop * self._val_cost)
        return max(0.0, self.budget - reserve)

    def progress(self) -> float:
        """Fraction of the training time spent: 0 at the first step, 1 at the stop."""
        if self._train_start is None:
            return 0.0
        span = self.stop_at - self._train_start
        return 1.0 if span <= 0 else min(1.0, max(0.0, (self.elapsed() - self._train_start) / span))

    def lr_factor(self, step: int) -> float:
        """The factor on ``initial_lr`` for optimizer step ``step`` (0-based) taken now."""
        warm = 1.0 if step >= self.warmup_steps else (step + 1) / self.warmup_steps
        return warm * cosine_factor(self.progress(), self.min_lr_ratio)

    def on_train_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if trainer.lr_scheduler_configs:
            raise ValueError(
                "TimeBudget sets the learning rate itself, but the model config has a scheduler "
                f"({type(trainer.lr_scheduler_configs[0].scheduler).__name__}); expected model.scheduler=null "
                "with callbacks.time_budget (the budgeted experiments set it)."
            )
        if trainer.check_val_every_n_epoch not in (None, 1):
            raise ValueError(
                f"trainer.check_val_every_n_epoch={trainer.check_val_every_n_epoch} would skip the final validation "
                "when the budget ends in an epoch it skips; expected 1, with a time-based cadence such as "
                "trainer.val_check_interval='00:00:10:00'."
            )
        for optimizer in trainer.optimizers:
            for group in optimizer.param_groups:
                group.setdefault("initial_lr", group["lr"])
        log.info("Time budget %.0f s: %.0f s spent, training stops at %.0f s", self.budget, self.elapsed(), self.stop_at)

    def on_train_batch_start(self, trainer: L.Trainer, pl_module: L.LightningModule, batch: Any, batch_idx: int) -> None:
        now = self.elapsed()
        if self._val_started is not None:  # the validation (and checkpoint) just finished
            self._val_cost = max(self._val_cost, now - self._val_started)
            self._val_started = None
        if self._train_start is None:
            self._train_start = now
        factor = self.lr_factor(trainer.global_step)
        for optimizer in trainer.optimizers:
            for group in optimizer.param_groups:
                group["lr"] = group["initial_lr"] * factor

    def on_train_batch_end(self, trainer: L.Trainer, pl_module: L.LightningModule, outputs: Any, batch: Any, batch_idx: int) -> None:
        if not self.done and self.elapsed() >= self.stop_at:
            self.done = True
            log.info(
                "Time budget: stopping at %.0f s of %.0f s after %d steps; a last validation and checkpoint follow",
                self.elapsed(), self.budget, trainer.global_step,
            )
        if self.done:
            trainer.should_stop = True

    def on_validation_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if not trainer.sanity_checking:
            self._val_started = self.elapsed()

    def state_dict(self) -> dict[str, Any]:
        return {
            "elapsed": self.elapsed(), "budget": self.budget, "stop_at": self.stop_at, "train_start": self._train_start,
            "val_cost": self._val_cost, "done": self.done,
        }

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        # This process's own start-up (since its clock started) counts on top of the earlier processes' time.
        self._prior = float(state_dict["elapsed"])
        self._train_start = state_dict["train_start"]
        self._val_cost = float(state_dict["val_cost"])
        self.done = bool(state_dict["done"])


def finished_budget(checkpoint: Mapping[str, Any]) -> str | None:
    """Why a checkpoint's run has used up its time budget, else ``None``."""
    state = checkpoint.get("callbacks", {}).get(STATE_KEY)
    if isinstance(state, Mapping) and state.get("done"):
        return f"its time budget of {state['budget']:.0f} s is used ({state['elapsed']:.0f} s spent)"
    return None
