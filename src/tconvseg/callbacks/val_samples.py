"""ValSamples (``+callbacks=val_samples``): every ``every_n_epochs`` epochs, an image | truth | prediction
grid of the first ``num_samples`` val items, written to ``<run dir>/val_samples/epoch<NNN>.png`` and sent to
each logger that shows pictures: TensorBoard and W&B as the image ``val/samples``, MLflow as an artifact in
``val_samples/``. Only global rank zero draws and writes."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path

import lightning as L
import numpy as np
import torch
import torch.nn.functional as F
from torchvision.transforms import v2

from tconvseg.callbacks.trackers import log_picture
from tconvseg.data.datasets.base import SegmentationDataset
from tconvseg.inference.visualize import grid, sample_rows
from tconvseg.training.system import SegmentationSystem

log = logging.getLogger(__name__)


def normalization_of(dataset: SegmentationDataset) -> tuple[Sequence[float] | None, Sequence[float] | None]:
    """``(mean, std)`` of the ``v2.Normalize`` in the dataset's transforms; ``(None, None)`` without one."""
    steps = getattr(dataset.transforms, "transforms", [dataset.transforms])
    for step in steps:
        if isinstance(step, v2.Normalize):
            return step.mean, step.std
    return None, None


@torch.no_grad()
def model_samples(system: SegmentationSystem, dataset: SegmentationDataset, count: int) -> list[list[np.ndarray]]:
    """``[image, truth, prediction]`` pictures of the first ``count`` items of ``dataset`` (one at a time: sizes may differ).

    Predictions use the system's test-time augmentation and, like its scoring, logits resized to
    the label size when labels are larger than the network input.
    """
    was_training = system.training
    system.eval()
    mean, std = normalization_of(dataset)
    rows: list[list[np.ndarray]] = []
    try:
        for index in range(min(count, len(dataset))):
            image, truth = dataset[index]
            if image.shape[-2:] == truth.shape[-2:]:  # labels finished band by band: no whole probability map of a tiled image
                prediction = system.inference.labels(image[None].to(system.device))
            else:
                logits = F.interpolate(system.inference(image[None].to(system.device)), size=truth.shape[-2:], mode="bilinear", align_corners=False)
                prediction = logits.argmax(dim=1)
            rows += sample_rows(image[None], truth[None], prediction.cpu(), dataset.info, mean, std)
    finally:
        system.train(was_training)
    return rows


class ValSamples(L.Callback):
    """Logs a grid of the first ``num_samples`` val items (image | truth | prediction) every ``every_n_epochs`` epochs.

    Args:
        num_samples: how many val items (the same ones every time).
        every_n_epochs: draw after the validation of every this many epochs (and never in the sanity check).
        folder: where the PNG files go, relative to the trainer's ``default_root_dir`` (the run folder).
    """

    def __init__(self, num_samples: int = 4, every_n_epochs: int = 1, folder: str = "val_samples") -> None:
        if num_samples < 1 or every_n_epochs < 1:
            raise ValueError(f"ValSamples(num_samples={num_samples}, every_n_epochs={every_n_epochs}) is invalid; expected both >= 1")
        self.num_samples, self.every_n_epochs, self.folder = num_samples, every_n_epochs, folder
        self.written: list[Path] = []

    def on_validation_epoch_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if trainer.sanity_checking or not trainer.is_global_zero or (trainer.current_epoch + 1) % self.every_n_epochs:
            return
        dataset = trainer.datamodule.dataset("val")  # type: ignore[attr-defined]
        picture = grid(model_samples(pl_module, dataset, self.num_samples))  # type: ignore[arg-type]
        path = Path(trainer.default_root_dir) / self.folder / f"epoch{trainer.current_epoch:03d}.png"
        path.parent.mkdir(parents=True, exist_ok=True)
        picture.save(path)
        self.written.append(path)
        for logger in trainer.loggers:
            log_picture(logger, picture, path, "val/samples", trainer.global_step)
