"""Every Lightning callback of tconvseg, one file each; ``configs/callbacks/*.yaml`` point here.

- `StoreRunInfo` (always added by ``train``): the model config and run identity in every checkpoint.
- `LogRunToTrackers` (always added): config, tags, run folder and checkpoint paths to MLflow / W&B loggers.
- `StopOnNonFinite` (always added): a NaN / infinite loss or gradient stops training, naming the step.
- `EMAWeights` (``callbacks=[default,ema]``): Lightning's weight averaging, batch-norm statistics recomputed for the average.
- `TimeBudget` (``callbacks.time_budget``): a learning rate keyed on elapsed time and a stop inside a
  wall-clock budget.
- `TrainTransformPhase` (``callbacks.train_phase``): other training transforms for the last part of a run.
- `ValSamples` (``+callbacks=val_samples``): image | truth | prediction grids during training.
- `ConfusionMatrixRecorder`: the test loop's confusion matrix, for the evaluation pictures.
- `BatchNormAdaptation` (``adapt_bn=true`` of eval / predict): batch-norm statistics from the images being scored.
"""

from .batch_norm_adaptation import BatchNormAdaptation, check_adapt_bn
from .confusion import ConfusionMatrixRecorder
from .ema import EMAWeights
from .non_finite import NonFiniteError, StopOnNonFinite
from .run_info import StoreRunInfo
from .time_budget import STATE_KEY, TimeBudget, finished_budget, process_started_at
from .trackers import LogRunToTrackers
from .transform_phase import TrainTransformPhase
from .val_samples import ValSamples

__all__ = [
    "STATE_KEY",
    "BatchNormAdaptation",
    "ConfusionMatrixRecorder",
    "EMAWeights",
    "LogRunToTrackers",
    "NonFiniteError",
    "StopOnNonFinite",
    "StoreRunInfo",
    "TimeBudget",
    "TrainTransformPhase",
    "ValSamples",
    "check_adapt_bn",
    "finished_budget",
    "process_started_at",
]
