"""EMAWeights: Lightning's weight averaging, with the averaged weights scored after fit."""

from __future__ import annotations

from typing import Any

import lightning as L
from lightning.pytorch.callbacks import EMAWeightAveraging


class EMAWeights(EMAWeightAveraging):
    """Lightning's `EMAWeightAveraging`; after fitting, a checkpoint is used as it is saved.

    Lightning's callback keeps its averaged model after ``fit``. When ``train(cfg)`` then validates
    or tests the best checkpoint with the same trainer, the stock callback loads the checkpoint's raw
    weights (``current_model_state``) into the model and swaps the average in for validation only:
    the test split would be scored with the raw weights. Here every stage but ``fit`` forgets the
    averaged model, so validate / test / predict use the checkpoint's ``state_dict``, which holds the
    averaged weights, exactly as ``evaluate(cfg)`` does. Training and resuming are Lightning's.
    """

    def setup(self, trainer: L.Trainer, pl_module: L.LightningModule, stage: str) -> None:
        if stage != "fit":
            self._average_model = None
        super().setup(trainer, pl_module, stage)

    def on_load_checkpoint(self, trainer: L.Trainer, pl_module: L.LightningModule, checkpoint: dict[str, Any]) -> None:
        if self._average_model is not None:  # outside fit: the averaged state_dict is already loaded
            super().on_load_checkpoint(trainer, pl_module, checkpoint)
