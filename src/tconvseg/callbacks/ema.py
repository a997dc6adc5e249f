"""EMAWeights: Lightning's weight averaging, with batch-norm statistics that fit the averaged weights."""

from __future__ import annotations

from typing import Any

import lightning as L
import torch
from lightning.pytorch.callbacks import EMAWeightAveraging

from tconvseg.nn.batch_norm import recompute_batch_norm


class EMAWeights(EMAWeightAveraging):
    """Lightning's `EMAWeightAveraging`, with two changes.

    **Batch-norm statistics.** An average of batch-norm running statistics (``use_buffers=True``) does
    not describe the averaged weights: their activations have other means and variances, the error
    grows layer by layer, and a short run's averaged model can score a third of the raw one (docs/results.md,
    "New streets"). So before the averaged model is used — validation, a checkpoint, the end of ``fit`` —
    its statistics are recomputed from the last ``recompute_bn_batches`` training batches of the current
    epoch (the inputs as the model saw them, after any device augmentation; kept by reference, so they
    cost that many batches of memory). The batches are those of the current epoch only, so a run resumed
    at an epoch boundary recomputes from the same batches as the uninterrupted one. ``0`` keeps
    Lightning's behaviour. Under DDP each process recomputes from its own batches.

    **After fitting, a checkpoint is used as it is saved.** Lightning's callback keeps its averaged
    model after ``fit``. When ``train(cfg)`` then validates or tests the best checkpoint with the same
    trainer, the stock callback loads the checkpoint's raw weights (``current_model_state``) into the
    model and swaps the average in for validation only: the test split would be scored with the raw
    weights. Here every stage but ``fit`` forgets the averaged model, so validate / test / predict use
    the checkpoint's ``state_dict``, which holds the averaged weights, exactly as ``evaluate(cfg)`` does.
    """

    def __init__(self, *args: Any, recompute_bn_batches: int = 32, **kwargs: Any) -> None:
        if recompute_bn_batches < 0:
            raise ValueError(f"callbacks.ema.recompute_bn_batches={recompute_bn_batches}: expected a count >= 0 (0 = off)")
        super().__init__(*args, **kwargs)
        self.recompute_bn_batches = recompute_bn_batches
        self._recent_inputs: list[torch.Tensor] = []
        self._bn_stale = False

    def setup(self, trainer: L.Trainer, pl_module: L.LightningModule, stage: str) -> None:
        if stage != "fit":
            self._average_model = None
        super().setup(trainer, pl_module, stage)

    def on_train_epoch_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self._recent_inputs = []

    def on_train_batch_end(self, trainer: L.Trainer, pl_module: L.LightningModule, outputs: Any, batch: Any, batch_idx: int) -> None:
        super().on_train_batch_end(trainer, pl_module, outputs, batch, batch_idx)
        if self.recompute_bn_batches:
            images = batch[0] if isinstance(batch, (list, tuple)) else batch
            self._recent_inputs.append(images.detach())
            del self._recent_inputs[: -self.recompute_bn_batches]
            self._bn_stale = True

    def _refresh_batch_norm(self) -> None:
        if self._bn_stale and self._average_model is not None:
            recompute_batch_norm(self._average_model.module, self._recent_inputs)
            self._bn_stale = False

    def on_validation_epoch_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self._refresh_batch_norm()
        super().on_validation_epoch_start(trainer, pl_module)

    def on_save_checkpoint(self, trainer: L.Trainer, pl_module: L.LightningModule, checkpoint: dict[str, Any]) -> None:
        self._refresh_batch_norm()
        super().on_save_checkpoint(trainer, pl_module, checkpoint)

    def on_train_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self._refresh_batch_norm()
        super().on_train_end(trainer, pl_module)

    def on_load_checkpoint(self, trainer: L.Trainer, pl_module: L.LightningModule, checkpoint: dict[str, Any]) -> None:
        if self._average_model is not None:  # outside fit: the averaged state_dict is already loaded
            super().on_load_checkpoint(trainer, pl_module, checkpoint)
