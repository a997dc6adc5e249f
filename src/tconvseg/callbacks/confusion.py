"""Evaluation pictures: the confusion matrix recorded during a test loop, and image | truth | prediction rows."""

from __future__ import annotations

import logging
from pathlib import Path

import lightning as L
import torch

from tconvseg.data.base import SegmentationDataset
from tconvseg.data.info import DatasetInfo
from tconvseg.system import SegmentationSystem
from tconvseg.visualize import grid, write_confusion_csv, write_confusion_png

from .val_samples import model_samples

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


def write_eval_pictures(
    recorder: ConfusionMatrixRecorder, system: SegmentationSystem, dataset: SegmentationDataset, info: DatasetInfo,
    folder: Path, tag: str, samples: int,
) -> list[Path]:
    """``confusion_matrix_<tag>.csv`` / ``.png`` and ``samples_<tag>.png`` (the first ``samples`` items) in ``folder``."""
    if recorder.matrix is None:
        raise RuntimeError("no confusion matrix was recorded: the test loop did not run to its end")
    names = list(info.class_names)
    written = [folder / f"confusion_matrix_{tag}.csv"]
    write_confusion_csv(recorder.matrix, names, written[0])
    if write_confusion_png(recorder.matrix, names, folder / f"confusion_matrix_{tag}.png"):
        written.append(folder / f"confusion_matrix_{tag}.png")
    if samples > 0:
        written.append(folder / f"samples_{tag}.png")
        grid(model_samples(system, dataset, samples)).save(written[-1])
    return written
