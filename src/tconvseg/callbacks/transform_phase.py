"""A training phase: new training transforms for the last part of a run (e.g. small crops, then full size).

Training on small random crops is cheap per step and sees many contexts; a short phase on whole
images at the end adapts the network (and its batch-norm statistics) to the size it is evaluated
at. The switch is keyed on the run's progress: the fraction of the time budget spent when a
`tconvseg.callbacks.TimeBudget` runs, else the fraction of the trainer's estimated steps.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

import lightning as L

from .time_budget import TimeBudget

log = logging.getLogger(__name__)


def run_progress(trainer: L.Trainer) -> float:
    """Fraction of the run done: the time budget's progress, else steps over the estimated total."""
    budget = next((c for c in trainer.callbacks if isinstance(c, TimeBudget)), None)
    if budget is not None:
        return budget.progress()
    total = trainer.estimated_stepping_batches
    return trainer.global_step / total if total and total != float("inf") else 0.0


class TrainTransformPhase(L.Callback):
    """From ``start`` (a fraction of the run) on, train with ``train_transforms`` merged over the data config's.

    Args:
        start: run fraction in ``[0, 1)`` at which the phase begins.
        train_transforms: options of `tconvseg.data.augment.transforms.train_transforms` to change,
            e.g. ``{crop_size: null, random_scale: null}`` for whole images.

    The datamodule must be a `tconvseg.data.SegmentationDataModule` without persistent
    loader workers (see ``set_train_transforms``). The switch is stored in checkpoints and applied
    again when a run resumes after it.
    """

    def __init__(self, start: float, train_transforms: Mapping[str, Any]) -> None:
        if not 0 <= start < 1:
            raise ValueError(f"train_phase start={start}: expected a run fraction in [0, 1)")
        self.start = start
        self.train_transforms = dict(train_transforms)
        self.switched = False

    def _switch(self, trainer: L.Trainer) -> None:
        datamodule = trainer.datamodule
        if datamodule is None or not hasattr(datamodule, "set_train_transforms"):
            raise ValueError("TrainTransformPhase needs a tconvseg SegmentationDataModule (data=...) to change its transforms")
        datamodule.set_train_transforms(self.train_transforms)
        self.switched = True

    def on_train_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if self.switched:  # resumed after the switch
            self._switch(trainer)

    def on_train_batch_end(self, trainer: L.Trainer, pl_module: L.LightningModule, outputs: Any, batch: Any, batch_idx: int) -> None:
        if not self.switched and run_progress(trainer) >= self.start:
            log.info("Training phase at %.0f%% of the run (step %d): transforms %s", 100 * self.start, trainer.global_step, self.train_transforms)
            self._switch(trainer)

    def state_dict(self) -> dict[str, Any]:
        return {"switched": self.switched}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        self.switched = bool(state_dict["switched"])
