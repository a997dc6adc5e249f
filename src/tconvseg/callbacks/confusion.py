"""The confusion matrix recorded during a test loop (eval writes it out with `tconvseg.inference.eval_pictures`)."""

from __future__ import annotations

import logging

import lightning as L
import torch

log = logging.getLogger(__name__)


class ConfusionMatrixRecorder(L.Callback):
    """Keeps the test split's confusion matrix ``(K, K)`` (rows: truth, columns: prediction; ignored pixels left out).

    It reads the system's test IoU metric (a torchmetrics ``MulticlassConfusionMatrix`` underneath)
    at the end of the test epoch, before the system resets it, summed over all ranks.
    """

    def __init__(self) -> None:
        self.matrix: torch.Tensor | None = None

    def on_test_epoch_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        iou = pl_module.test_metrics["iou"]  # type: ignore[index]
        with iou.sync_context():
            self.matrix = iou.confmat.detach().cpu().clone()
