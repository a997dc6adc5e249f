"""``predict(cfg)``: segment image files with a trained checkpoint; ``main()`` is ``tconvseg-predict``.

For each input image, at its own size (or ``scale`` times it): ``<stem>.png``, a palette PNG of
class indices, and ``<stem>_overlay.jpg``, the image blended with the class colours; once per run
``legend.png``. Runs through ``trainer.predict`` (CPU or GPU, a progress bar) with batches of
same-size images; ``tta=flip`` averages each image with its mirror image, ``tta=multiscale_flip``
also with copies resized by each of ``tta_scales``. A video input (.mp4 .avi .mov .mkv .webm) gives
``<stem>_overlay.mp4`` instead, streamed frame batch by frame batch (`tconvseg.tasks.predict_video`).
"""

from __future__ import annotations

import logging
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import lightning as L
import numpy as np
import torch
from lightning.pytorch.callbacks import BasePredictionWriter
from omegaconf import DictConfig
from PIL import Image
from rich.console import Console
from torch.utils.data import DataLoader
from torchvision.transforms import v2

from tconvseg.callbacks import BatchNormAdaptation
from tconvseg.data.augment.transforms import IMAGENET_MEAN, IMAGENET_STD, Normalise, eval_transforms
from tconvseg.data.datasets.images import ImageFilesDataset, SameSizeBatchSampler, collate_images, list_images
from tconvseg.data.datasets.info import DatasetInfo
from tconvseg.data.errors import DatasetError
from tconvseg.entry import run_hydra
from tconvseg.inference.restore import image_options, normalisation, restore, set_up_inference
from tconvseg.inference.video import is_video
from tconvseg.inference.visualize import denormalize, legend, overlay, palette_png
from tconvseg.training.atomic import atomic_save_image
from tconvseg.training.builders import build_group, build_trainer
from tconvseg.training.system import SegmentationSystem

log = logging.getLogger(__name__)


class SegmentationWriter(BasePredictionWriter):
    """Writes ``<stem>.png`` (palette PNG of class indices) and ``<stem>_overlay.jpg`` per image, ``legend.png`` once.

    Collects the files a batch could not decode (``on_error=skip``) in ``failed`` and the written
    stems in ``written``. Only global rank zero writes the legend; each rank writes its own images.
    """

    def __init__(
        self, output_dir: str | Path, info: DatasetInfo, mean: Sequence[float] | None = IMAGENET_MEAN,
        std: Sequence[float] | None = IMAGENET_STD, alpha: float = 0.5,
    ) -> None:
        super().__init__(write_interval="batch")
        self.output_dir, self.info, self.mean, self.std, self.alpha = Path(output_dir), info, mean, std, alpha
        self.written: list[str] = []
        self.failed: list[tuple[str, str]] = []

    def on_predict_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self.output_dir.mkdir(parents=True, exist_ok=True)
        if trainer.is_global_zero:
            atomic_save_image(legend(self.info), self.output_dir / "legend.png")

    def write_on_batch_end(
        self, trainer: L.Trainer, pl_module: L.LightningModule, prediction: Any, batch_indices: Sequence[int] | None,
        batch: dict[str, Any], batch_idx: int, dataloader_idx: int,
    ) -> None:
        self.failed.extend(batch["failed"])
        if prediction is None:
            return
        for path, image, labels in zip(batch["paths"], batch["images"], prediction.cpu()):
            stem = Path(path).stem
            # each file appears whole or not at all: an interrupted predict leaves no truncated mask or overlay
            atomic_save_image(palette_png(labels, self.info), self.output_dir / f"{stem}.png")
            atomic_save_image(Image.fromarray(self.overlay(image.cpu(), labels)), self.output_dir / f"{stem}_overlay.jpg", quality=90)
            self.written.append(stem)

    def overlay(self, image: torch.Tensor, labels: torch.Tensor) -> np.ndarray:
        """``(H, W, 3) uint8``: ``image (3, H, W)`` (``uint8``, or floats normalised with ``mean`` / ``std``) blended
        with the colours of ``labels (H, W)``, a few rows at a time: the float buffers of the blend stay small next to
        a large photo."""
        height, width = labels.shape[-2:]
        out = np.empty((height, width, 3), dtype=np.uint8)
        step = max(1, _OVERLAY_PIXELS // max(1, width))
        for top in range(0, height, step):
            rows = image[:, top : top + step]
            picture = rows.permute(1, 2, 0).numpy() if rows.dtype == torch.uint8 else denormalize(rows, self.mean, self.std)
            out[top : top + step] = overlay(picture, labels[top : top + step], self.info, self.alpha)
        return out


#: Pixels blended at a time in an overlay.
_OVERLAY_PIXELS = 1 << 20


class _Predictor(L.LightningModule):
    """Feeds the ``uint8`` image batches of `collate_images` to the system's inference (its TTA and tiles included),
    normalised by ``prepare`` batch of tiles by batch of tiles (the whole image never exists as floats when tiled);
    ``prepare=None``: the batches are the network's input already (video frames)."""

    def __init__(self, system: SegmentationSystem, prepare: Normalise | None = None) -> None:
        super().__init__()
        self.system, self.prepare = system, prepare

    def predict_step(self, batch: dict[str, Any], batch_idx: int) -> torch.Tensor | None:
        if batch["images"] is None:  # every file of the batch failed to decode (on_error=skip)
            return None
        return self.system.inference.labels(batch["images"], prepare=self.prepare)


def predict(cfg: DictConfig) -> tuple[dict[str, Any], dict[str, Any]]:
    """Segment every image of ``cfg.input`` with ``cfg.ckpt_path``; write the pictures to ``cfg.output_dir``.

    An input ending in a video suffix (.mp4 .avi .mov .mkv .webm) is a clip: see `tconvseg.tasks.predict_video`.

    Returns ``(summary, objects)``: ``summary`` has ``written`` (stems), ``skipped`` (``(path,
    reason)``) and ``output_dir``; ``objects`` has ``cfg``, ``system``, ``info``, ``trainer``.

    Raises:
        DatasetNotFoundError: the input names no image. DatasetError: an unreadable image
            (``on_error=stop``), or none readable. ValueError: bad options or checkpoint. VideoError (a
            DatasetError): a video that cannot be opened or decoded to its end (see `predict_video`).
        ImportError: a video input without PyAV (``pip install 'tconvseg[video]'``).
    """
    if cfg.get("on_error") not in ("stop", "skip"):
        raise ValueError(f"on_error={cfg.get('on_error')!r} is invalid; expected stop (the first unreadable image ends the run) or skip")
    scale, max_pixels = image_options(cfg)
    options = set_up_inference(cfg)  # checked before the images and the checkpoint are read
    adapt_bn = options.adapt_bn
    if is_video(cfg.input):
        from tconvseg.tasks.predict_video import predict_video  # imports this module's _Predictor: imported here, not above

        return predict_video(cfg, options, scale=scale, max_pixels=max_pixels)
    files = list_images(str(cfg.input))
    restored = restore(cfg, options)
    mean, std = normalisation(cfg)
    # uint8 images (resized only), normalised tile by tile in the predict step: 300 MB for a 100-megapixel photo, not 1.2 GB
    resize = [t for t in eval_transforms(scale=scale, mean=None, std=None).transforms if not isinstance(t, v2.ToDtype)]
    dataset = ImageFilesDataset(files, v2.Compose(resize) if resize else None, on_error=cfg.on_error, max_pixels=max_pixels, uint8=True)
    prepare = Normalise(mean, std)
    if not len(dataset):
        raise DatasetError(f"input={cfg.input}: none of its {len(files)} image(s) could be read: {dataset.failed[:3]}")
    def loader() -> DataLoader:
        return DataLoader(
            dataset, batch_sampler=SameSizeBatchSampler(dataset.sizes, cfg.batch_size),
            collate_fn=collate_images, num_workers=cfg.get("num_workers", 0),
        )

    output_dir = Path(cfg.output_dir)
    writer = SegmentationWriter(output_dir, restored.info, mean, std, cfg.get("overlay_alpha", 0.5))
    adaptation = [BatchNormAdaptation(restored.system, images=loader(), prepare=prepare)] if adapt_bn else []
    trainer = build_trainer(cfg, logger=False, callbacks=[writer, *adaptation, *build_group(cfg.get("callbacks"))], enable_checkpointing=False)
    with warnings.catch_warnings():
        # Lightning cannot see that a custom batch sampler returns every index; this one does.
        warnings.filterwarnings("ignore", message=".*custom batch sampler.*")
        trainer.predict(_Predictor(restored.system, prepare), dataloaders=loader(), return_predictions=False)

    skipped = dataset.failed + writer.failed
    if skipped:
        log.warning("Skipped %d unreadable image(s) (on_error=skip):\n%s", len(skipped), "\n".join(f"  {p}: {m}" for p, m in skipped))
    note = f"; skipped {len(skipped)} unreadable image(s), listed above" if skipped else ""
    Console().print(f"Wrote {len(writer.written)} prediction(s) of {restored.path} to {output_dir}{note}")
    summary = {"written": writer.written, "skipped": skipped, "output_dir": output_dir}
    return summary, {"cfg": cfg, "system": restored.system, "info": restored.info, "trainer": trainer}


def _task(cfg: DictConfig) -> None:
    predict(cfg)


def main() -> None:
    """``tconvseg-predict`` / ``python scripts/predict.py ckpt_path=... input=... output_dir=...``."""
    run_hydra(_task, "predict")
