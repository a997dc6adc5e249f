"""``tconvseg-predict input=clip.mp4``: a video's overlay video (and, with ``video_masks=true``, a mask per frame).

Streamed: frames are decoded in batches of ``batch_size``, each batch goes through the restored system's
predict step (``tta`` and ``tiles`` as for images) under the configured trainer, and its overlays are encoded
before the next batch is decoded, so memory does not grow with the clip's length. Outputs in ``output_dir``:

- ``<stem>_overlay.mp4``: the frames blended with the class colours, at the clip's size and frame rate
  (constant: a variable-rate clip is written at its average rate), codec ``video_codec`` (H.264 by default;
  another FFmpeg has when it lacks it, named in the log and the closing line);
- ``<stem>_masks/<frame>.png`` with ``video_masks=true``: palette PNGs of class indices, frame numbers
  from ``000000`` (as ``<stem>.png`` for an image: at the network's size, the clip's unless ``scale`` is set);
- ``legend.png``.

A clip that stops decoding midway (truncated, damaged) raises a `VideoError` naming the file and the frame
reached, after the frames before it were predicted and written: the overlay video is closed and plays.
"""

from __future__ import annotations

import logging
import warnings
from pathlib import Path
from typing import Any

import lightning as L
from lightning.pytorch.callbacks import BasePredictionWriter, ProgressBar
from omegaconf import DictConfig
from rich.console import Console
from torch.utils.data import DataLoader

from tconvseg.callbacks import BatchNormAdaptation
from tconvseg.data.augment.transforms import eval_transforms
from tconvseg.data.datasets.images import check_pixels
from tconvseg.data.datasets.info import DatasetInfo
from tconvseg.inference.restore import InferenceOptions, normalisation, restore
from tconvseg.inference.video import (
    FrameProgress,
    VideoError,
    VideoFrames,
    VideoSource,
    VideoWriter,
    choose_codec,
    overlay_frames,
    probe,
    write_masks,
)
from tconvseg.inference.visualize import legend
from tconvseg.tasks.predict import _Predictor
from tconvseg.training.atomic import atomic_save_image
from tconvseg.training.builders import build_group, build_trainer

log = logging.getLogger(__name__)


class VideoPredictionWriter(BasePredictionWriter):
    """Encodes each predicted batch's overlays into ``video`` (and its masks into ``masks``) as it comes; ``legend.png``.

    The video is opened when prediction starts and closed when it ends or fails (`close`; idempotent), so an
    interrupted run leaves a playable file of the frames written so far.
    """

    def __init__(
        self, video: Path, source: VideoSource, codec: str, info: DatasetInfo, alpha: float = 0.5, masks: Path | None = None,
    ) -> None:
        super().__init__(write_interval="batch")
        self.video, self.source, self.codec, self.info, self.alpha, self.masks = video, source, codec, info, alpha, masks
        self.writer: VideoWriter | None = None

    @property
    def frames(self) -> int:
        """Frames encoded so far."""
        return self.writer.frames if self.writer is not None else 0

    def on_predict_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self.video.parent.mkdir(parents=True, exist_ok=True)
        atomic_save_image(legend(self.info), self.video.parent / "legend.png")
        if self.masks is not None:
            self.masks.mkdir(parents=True, exist_ok=True)
        if self.writer is None:
            self.writer = VideoWriter(self.video, self.source.width, self.source.height, self.source.rate, self.codec)

    def write_on_batch_end(
        self, trainer: L.Trainer, pl_module: L.LightningModule, prediction: Any, batch_indices: Any, batch: dict[str, Any],
        batch_idx: int, dataloader_idx: int,
    ) -> None:
        assert self.writer is not None  # opened in on_predict_start
        if self.masks is not None:
            write_masks(self.masks, batch["indices"], prediction, self.info)
        for rgb in overlay_frames(batch["frames"], prediction, self.info, self.alpha):
            self.writer.write(rgb)

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()

    def on_predict_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self.close()

    def on_exception(self, trainer: L.Trainer, pl_module: L.LightningModule, exception: BaseException) -> None:
        self.close()


class FrameProgressCallback(L.Callback):
    """`FrameProgress` over the predict loop: frames predicted, of how many, frames/s."""

    def __init__(self, description: str, total: int | None) -> None:
        self.progress = FrameProgress(description, total)

    def on_predict_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self.progress.start()

    def on_predict_batch_end(self, trainer: L.Trainer, pl_module: L.LightningModule, outputs: Any, batch: Any, batch_idx: int,
                             dataloader_idx: int = 0) -> None:
        self.progress.advance(len(batch["indices"]))

    def on_predict_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self.progress.stop()

    def on_exception(self, trainer: L.Trainer, pl_module: L.LightningModule, exception: BaseException) -> None:
        self.progress.stop()


def _as_is(batch: dict[str, Any]) -> dict[str, Any]:
    """The dataset's batch unchanged (the default would turn its numpy frames into tensors, sent to the device)."""
    return batch


def predict_video(
    cfg: DictConfig, options: InferenceOptions, *, scale: float | None, max_pixels: int,
) -> tuple[dict[str, Any], dict[str, Any]]:
    """Predict the clip ``cfg.input`` with ``cfg.ckpt_path`` frame batch by frame batch; see the module's docstring.

    ``options``, ``scale`` and ``max_pixels`` were checked by `tconvseg.tasks.predict.predict`, which calls this.

    Returns ``(summary, objects)``: ``summary`` has ``written`` (the clip's stem), ``frames`` (encoded),
    ``video`` (its path), ``codec``, ``masks`` (their folder or ``None``), ``skipped`` (empty) and ``output_dir``;
    ``objects`` has ``cfg``, ``system``, ``info``, ``trainer``.

    Raises:
        ImportError: PyAV is missing (``pip install 'tconvseg[video]'``). DatasetNotFoundError: no such file.
        VideoError: the file cannot be opened (nothing written), or stops decoding before its end (what was decoded
            is written and kept: the message says so). ValueError: bad options or checkpoint.
    """
    source = probe(cfg.input)  # PyAV missing, a file that is no video: told before the checkpoint is read
    check_pixels(source.path, (source.height, source.width), max_pixels)
    codec = choose_codec(cfg.get("video_codec") or None)
    restored = restore(cfg, options)
    mean, std = normalisation(cfg)
    frames = VideoFrames(source, cfg.batch_size, eval_transforms(scale=scale, mean=mean, std=std))

    def loader() -> DataLoader:
        # batches come whole from the dataset; decoding runs here (FFmpeg's own threads), never in loader workers
        return DataLoader(frames, batch_size=None, num_workers=0, collate_fn=_as_is)

    output_dir = Path(cfg.output_dir)
    stem = source.path.stem
    masks = output_dir / f"{stem}_masks" if cfg.get("video_masks", False) else None
    writer = VideoPredictionWriter(output_dir / f"{stem}_overlay.mp4", source, codec, restored.info, cfg.get("overlay_alpha", 0.5), masks)
    # Lightning's bar counts batches; the frame bar replaces it where one was configured
    callbacks = build_group(cfg.get("callbacks"))
    progress = [FrameProgressCallback(source.path.name, source.frames)] if any(isinstance(c, ProgressBar) for c in callbacks) else []
    callbacks = [c for c in callbacks if not isinstance(c, ProgressBar)]
    adaptation = [BatchNormAdaptation(restored.system, images=loader())] if options.adapt_bn else []
    trainer = build_trainer(cfg, logger=False, callbacks=[writer, *progress, *adaptation, *callbacks], enable_checkpointing=False,
                            enable_progress_bar=False)
    if trainer.world_size > 1:
        raise ValueError(
            f"input={source.path}: a video is predicted in one process, but this run has {trainer.world_size} (each would decode "
            "and write the whole clip); expected trainer.devices=1."
        )
    try:
        with warnings.catch_warnings():
            # decoding happens in the main process on purpose (an iterable clip cannot be split among workers)
            warnings.filterwarnings("ignore", message=".*does not have many workers.*")
            warnings.filterwarnings("ignore", message=".*Couldn't infer the batch indices.*")  # an iterable clip has none; unused
            trainer.predict(_Predictor(restored.system), dataloaders=loader(), return_predictions=False)
    finally:
        writer.close()
    if frames.error is not None:
        raise VideoError(
            f"{frames.error} The {writer.frames} frame(s) before it were predicted and kept: {writer.video} is closed and plays"
            f"{f', their masks are in {masks}' if masks is not None else ''}."
        ) from frames.error
    rate = f"{float(source.rate):g}"
    note = f", masks in {masks}" if masks is not None else ""
    Console().print(f"Wrote {writer.frames} frame(s) of {restored.path} to {writer.video} ({codec}, {source.width}x{source.height}, "
                    f"{rate} frames/s){note}")
    summary = {"written": [stem], "frames": writer.frames, "video": writer.video, "codec": codec, "masks": masks, "skipped": [],
               "output_dir": output_dir}
    return summary, {"cfg": cfg, "system": restored.system, "info": restored.info, "trainer": trainer}
