"""``adapt_bn=true`` of eval and predict: batch-norm statistics taken from the images about to be scored.

A network trained on some drives normalises every layer with the running statistics of those drives.
Images of another light or camera shift those statistics; recomputing them from the new images (no labels)
is AdaBN (Li et al., "Revisiting Batch Normalization For Practical Domain Adaptation", 2016). It is a
trade, not a free gain: measured in docs/results.md, it lifts a model on a dusk drive it never saw and
costs one on a daylight drive like its training ones, where the new statistics carry the drive's content
(its mix of classes) as well as its light.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Iterator
from typing import Any

import lightning as L
import torch
from torch import nn

from tconvseg.nn.batch_norm import recompute_batch_norm

log = logging.getLogger(__name__)


def check_adapt_bn(value: Any) -> bool:
    """``adapt_bn`` of an entry point's config, checked: a boolean."""
    if not isinstance(value, bool):
        raise ValueError(
            f"adapt_bn={value!r} is invalid; expected true (recompute the batch-norm statistics from the images being "
            f"scored before scoring them: test-time adaptation to a new light or camera) or false"
        )
    return value


class _Scoring(nn.Module):
    """The system as the test / predict steps run it (test-time augmentation and tiles included)."""

    def __init__(self, system: L.LightningModule, prepare: Callable[[torch.Tensor], torch.Tensor] | None = None) -> None:
        super().__init__()
        self.system, self.prepare = system, prepare

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        # Only the forward passes matter (their batch statistics): labels, finished band by band, keep a tiled
        # image's whole probability map out of memory.
        inference = self.system.inference
        if hasattr(inference, "labels"):  # a TiledInference
            return inference.labels(images, prepare=self.prepare)
        return inference(images if self.prepare is None else self.prepare(images))


class BatchNormAdaptation(L.Callback):
    """Before the test or predict loop, set every batch-norm layer's running statistics to the mean / variance
    of that loop's images, as the loop's steps see them (through ``system.inference``: TTA and tiles included).

    One pass over the loop's dataloaders (images only, labels unused) in their order, cumulative averages
    over the batches (`tconvseg.nn.recompute_batch_norm`); the weights do not change and nothing is written
    back to the checkpoint. Then the loop runs as usual: each image is scored in one pass.

    Args:
        system: the module whose ``inference`` scores the images; ``None``: the loop's LightningModule itself
            (predict wraps the system in another module, and passes the system here).
        images: an iterable of the loop's batches to adapt on instead of the loop's own dataloaders (predict
            passes a loader of its own: Lightning wraps a predict loader's batch sampler in one shared iterator,
            which a second pass over it would exhaust).
        prepare: what turns the batches' images into the network's input, tile by tile (predict's ``uint8`` images:
            `tconvseg.data.augment.transforms.Normalise`); ``None``: they are the input.

    Raises:
        ValueError: under more than one process (each rank would adapt to its own shard of the images).
    """

    def __init__(
        self, system: L.LightningModule | None = None, images: Iterable[Any] | None = None,
        prepare: Callable[[torch.Tensor], torch.Tensor] | None = None,
    ) -> None:
        self.system = system
        self.images = images
        self.prepare = prepare

    def on_test_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self._adapt(trainer, pl_module, trainer.test_dataloaders, "test")

    def on_predict_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self._adapt(trainer, pl_module, trainer.predict_dataloaders, "predict")

    def _adapt(self, trainer: L.Trainer, pl_module: L.LightningModule, loaders: Any, stage: str) -> None:
        if trainer.world_size > 1:
            raise ValueError(
                f"adapt_bn=true runs in one process, but this {stage} run has {trainer.world_size}: each rank would "
                f"adapt the batch-norm statistics to its own shard of the images. Run it on one device (trainer.devices=1)."
            )
        if self.images is not None:
            loaders = [self.images]
        loaders = [loaders] if not isinstance(loaders, (list, tuple)) else list(loaders)
        count = [0]
        system = self.system if self.system is not None else pl_module
        try:
            changed = recompute_batch_norm(_Scoring(system, self.prepare), _images(loaders, system.device, count))
        except ValueError as err:
            if "more than 1 value per channel" not in str(err):
                raise
            raise ValueError(
                f"adapt_bn=true: a batch-norm layer of the network saw a single value per channel in a batch of the "
                f"{stage} images (a norm after global pooling, with one image per batch); its variance is undefined. "
                f"Expected batches of several images: raise the batch size (predict: batch_size=8; eval: "
                f"data.eval_batch_size=8), or give images of one size so that they batch together."
            ) from err
        if changed:
            log.info("adapt_bn=true: batch-norm statistics recomputed from the %d %s images about to be scored", count[0], stage)
        else:
            log.warning("adapt_bn=true changed nothing: the network has no batch norm, or there are no %s images", stage)


def _images(loaders: Iterable[Any], device: torch.device, count: list[int]) -> Iterator[torch.Tensor]:
    for loader in loaders:
        for batch in loader:
            if isinstance(batch, dict):  # predict's batches
                images = batch.get("images")
            else:  # (images, masks) of eval, or bare images
                images = batch[0] if isinstance(batch, (tuple, list)) else batch
            if images is None:  # predict: every file of the batch failed to decode (on_error=skip)
                continue
            count[0] += len(images)
            yield images.to(device)
