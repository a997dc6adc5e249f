"""The training system: a LightningModule around any segmentation ``nn.Module``.

It owns the loss (a partial from ``model.loss``, by default weighted cross-entropy with an ignore
index), the metrics (whole-split torchmetrics) and the optimizer / schedule, all built from
partials given by the config. Class weights are computed where the data is (the builder) and
passed in.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Mapping, Sequence
from typing import Any, Literal

import lightning as L
import torch
import torch.nn.functional as F
from torch import nn
from torchmetrics import MeanMetric

from tconvseg.inference.tiling import TiledInference
from tconvseg.inference.tta import TestTimeAugmentation
from tconvseg.losses import CrossEntropy
from tconvseg.training.metrics import SegmentationMetrics

Stage = Literal["train", "val", "test"]


class SegmentationSystem(L.LightningModule):
    """Train / validate / test / predict a model whose contract is ``(N, C, H, W) -> (N, K, H, W)``.

    Args:
        net: the segmentation network (e.g. `tconvseg.nn.FCN`). When it has
            ``forward_with_aux`` (auxiliary heads), training adds ``aux_weight`` times the loss of
            each auxiliary output; validation, test and prediction use the main output only.
        optimizer: partial taking ``params``.
        scheduler: partial taking ``optimizer`` (and ``total_steps``, filled from the trainer,
            if it has such a parameter); stepped every optimizer step. ``None`` for none.
        loss: partial taking ``weight`` and ``ignore_index`` (see `tconvseg.losses`);
            ``None``: weighted cross-entropy.
        num_classes: ``K``.
        ignore_index: label value left out of loss and metrics.
        class_names: names for the per-class metrics.
        class_weights: ``K`` loss weights, or ``None`` for ones. Kept as a buffer, so they are
            saved in (and restored from) checkpoints.
        aux_weight: factor of each auxiliary loss.
        channels_last: keep the network's weights and inputs in NHWC memory format (speed only; it
            helps some encoders on CPU and slows others, measure with ``scripts/benchmark.py``).
        compile: ``torch.compile`` the network when a Trainer stage starts (``setup``): ``True``, or
            the keyword arguments of ``nn.Module.compile`` (e.g. ``{mode: max-autotune}``). In place,
            so parameter names and checkpoints are unchanged; compile time counts in the run.

        tta: the test-time augmentation of the test and predict steps: ``{"mode": ..., "scales": [...]}``
            (`tconvseg.inference.tta.TestTimeAugmentation`; ``None``: none). Built once into ``self.tta``;
            an evaluation choice, so it is not saved with the hyperparameters.
        tiling: how test and predict steps tile large images: ``{"tiles", "overlap", "margin", "max_pixels"}``
            (`tconvseg.inference.tiling.TiledInference`, around the TTA; ``None``: whole images). Not saved either.

    Batches are ``(images (N, C, H, W) float, masks (N, H', W') int64)``. When the masks are
    larger than the images (scoring at full label resolution), logits are resized to the mask
    size with bilinear interpolation for loss and metrics only; the network itself never
    interpolates.
    """

    def __init__(
        self,
        net: nn.Module,
        optimizer: Callable[..., torch.optim.Optimizer],
        scheduler: Callable[..., Any] | None = None,
        loss: Callable[..., nn.Module] | None = None,
        *,
        num_classes: int,
        ignore_index: int,
        class_names: Sequence[str] | None = None,
        class_weights: Sequence[float] | torch.Tensor | None = None,
        aux_weight: float = 0.4,
        channels_last: bool = False,
        compile: bool | Mapping[str, Any] = False,
        tta: Mapping[str, Any] | None = None,
        tiling: Mapping[str, Any] | None = None,
        encoder_lr_factor: float = 1.0,
    ) -> None:
        super().__init__()
        self.save_hyperparameters(ignore=["net", "optimizer", "scheduler", "loss", "class_weights", "tta", "tiling"], logger=False)
        self.net = net
        self.optimizer_factory = optimizer
        self.scheduler_factory = scheduler
        self.num_classes = num_classes
        self.ignore_index = ignore_index
        self.aux_weight = aux_weight
        if isinstance(encoder_lr_factor, bool) or not isinstance(encoder_lr_factor, (int, float)) or not 0 < encoder_lr_factor < float("inf"):
            raise ValueError(f"model.encoder_lr_factor={encoder_lr_factor!r} is invalid; expected a positive number (1: same lr as the rest)")
        self.encoder_lr_factor = float(encoder_lr_factor)
        self.tta = TestTimeAugmentation(self, **dict(tta or {}))
        self.inference = TiledInference(self.tta, **dict(tiling or {}))  # what test and predict steps run
        self.memory_format = torch.channels_last if channels_last else torch.contiguous_format
        self.net.to(memory_format=self.memory_format)
        self.compile_options = (dict(compile) if isinstance(compile, Mapping) else {}) if compile else None
        self._compiled: dict[str, Callable[..., Any]] = {}  # a plain dict: never part of the state dict
        weights = torch.ones(num_classes)
        if class_weights is not None:
            weights = torch.as_tensor(class_weights, dtype=torch.float32).flatten()
            if weights.shape != (num_classes,):
                raise ValueError(f"class_weights has {weights.numel()} weights, expected {num_classes} (one per class)")
        self.register_buffer("class_weights", weights)
        self.criterion = (loss or CrossEntropy)(weight=weights, ignore_index=ignore_index)
        # The criterion keeps its own copy of the weights; refresh it when a checkpoint restores ours.
        self.register_load_state_dict_post_hook(lambda module, _: module.criterion.set_weight(module.class_weights))
        self.train_metrics = SegmentationMetrics(num_classes, ignore_index, class_names)
        self.val_metrics = SegmentationMetrics(num_classes, ignore_index, class_names)
        self.test_metrics = SegmentationMetrics(num_classes, ignore_index, class_names)
        self.val_loss, self.test_loss = MeanMetric(), MeanMetric()

    def setup(self, stage: str) -> None:
        # Compiled functions, not a compiled module: an OptimizedModule attribute would add a second
        # copy of every parameter name to the state dict. (Lightning's EMA callback copies the
        # system in its own setup, which runs before this one.)
        if self.compile_options is not None and not self._compiled:
            for name in ("forward", "forward_with_aux"):
                if hasattr(self.net, name):
                    self._compiled[name] = torch.compile(getattr(self.net, name), **self.compile_options)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return self._compiled.get("forward", self.net)(images.contiguous(memory_format=self.memory_format))

    def _logits_at_label_size(self, logits: torch.Tensor, masks: torch.Tensor) -> torch.Tensor:
        if logits.shape[-2:] == masks.shape[-2:]:
            return logits
        return F.interpolate(logits, size=masks.shape[-2:], mode="bilinear", align_corners=False)

    def loss_and_logits(self, images: torch.Tensor, masks: torch.Tensor, stage: Stage) -> tuple[torch.Tensor, torch.Tensor]:
        """``(loss, logits (N, K, H', W') at the masks' size)``; in training with the aux-head losses added."""
        with_aux = self._compiled.get("forward_with_aux", getattr(self.net, "forward_with_aux", None))
        if stage == "train" and with_aux is not None:
            main, aux = with_aux(images.contiguous(memory_format=self.memory_format))
        elif stage == "test":
            main, aux = self.inference(images), []
        else:
            main, aux = self(images), []
        logits = self._logits_at_label_size(main, masks)
        loss = self.criterion(logits, masks)
        for extra in aux:
            loss = loss + self.aux_weight * self.criterion(self._logits_at_label_size(extra, masks), masks)
        return loss, logits

    def banded_test(self, images: torch.Tensor, masks: torch.Tensor) -> torch.Tensor | None:
        """The test step's loss with the metrics updated band by band (`TiledInference.bands`), so a tiled image
        never has its whole probability map in memory; ``None`` where that cannot give today's numbers (the image
        is not tiled, the masks have another size than the images, or the loss is not a per-pixel weighted mean).

        The loss is the cross-entropy's own weighted mean, re-assembled from the bands' means and weights.
        """
        if masks.shape[-2:] != images.shape[-2:] or not isinstance(self.criterion, CrossEntropy):
            return None
        if self.inference.tile_for(*images.shape[-2:]) is None:
            return None
        weights = getattr(self.criterion, "weight", None)
        total = torch.zeros((), device=images.device)
        weight_sum = torch.zeros((), device=images.device)
        for image, mask in zip(images, masks):
            for top, bottom, rows in self.inference.bands(image[None]):
                target = mask[None, top:bottom]
                self.test_metrics.update(rows.argmax(dim=1), target)
                valid = target != self.ignore_index
                band_weight = (weights.to(rows.device)[target[valid]].sum() if weights is not None else valid.sum()).float()
                if band_weight > 0:
                    total += self.criterion(rows, target).float() * band_weight
                    weight_sum += band_weight
        return total / weight_sum if weight_sum > 0 else total

    def model_step(self, batch: tuple[torch.Tensor, torch.Tensor], stage: Stage) -> torch.Tensor:
        """The one step shared by train / val / test: loss, metric update, logging."""
        images, masks = batch
        loss = self.banded_test(images, masks) if stage == "test" else None
        if loss is None:
            loss, logits = self.loss_and_logits(images, masks, stage)
            self._metrics(stage).update(logits.argmax(dim=1), masks)
        if stage == "train":
            self.log("train/loss", loss, on_step=True, on_epoch=True, prog_bar=True, batch_size=images.shape[0])
        else:
            # A MeanMetric sums loss and count over DDP ranks exactly; Lightning's own mean sync rounds
            # the summed batch count down to an integer (15 images on 2 ranks count as 14).
            mean = getattr(self, f"{stage}_loss")
            mean.update(loss.detach(), weight=images.shape[0])
            self.log(f"{stage}/loss", mean, on_epoch=True, prog_bar=True)
        return loss

    def training_step(self, batch: Any, batch_idx: int) -> torch.Tensor:
        return self.model_step(batch, "train")

    def validation_step(self, batch: Any, batch_idx: int) -> None:
        self.model_step(batch, "val")

    def test_step(self, batch: Any, batch_idx: int) -> None:
        self.model_step(batch, "test")

    def predict_step(self, batch: Any, batch_idx: int, dataloader_idx: int = 0) -> torch.Tensor:
        """Label maps ``(N, H, W)`` at the input images' size, ``uint8`` (``int64`` above 256 classes); tiled
        images are finished band by band (`TiledInference.labels`)."""
        images = batch[0] if isinstance(batch, (tuple, list)) else batch
        return self.inference.labels(images)

    def _metrics(self, stage: Stage) -> SegmentationMetrics:
        return getattr(self, f"{stage}_metrics")

    def _log_metrics(self, stage: Stage) -> None:
        # compute() already reduced the metric state over all DDP ranks, so every rank holds the
        # same values; sync_dist=True then averages equal numbers (and silences Lightning's warning).
        summary = self._metrics(stage).summary()
        self.log(f"{stage}/mIoU", summary.pop("mIoU"), prog_bar=True, sync_dist=True)
        self.log_dict({f"{stage}/{k}": v for k, v in summary.items()}, sync_dist=True)
        self._metrics(stage).reset()

    def on_train_epoch_end(self) -> None:
        self._log_metrics("train")

    def on_validation_epoch_end(self) -> None:
        self._log_metrics("val")

    def on_test_epoch_end(self) -> None:
        self._log_metrics("test")

    def parameter_groups(self) -> list[dict[str, Any]]:
        """The optimizer's parameter groups: the encoder's at ``lr * encoder_lr_factor`` (pretrained weights are
        usually fine-tuned slower than the new decoder), the rest at ``lr``; one group when the factor is 1."""
        trainable = [p for p in self.parameters() if p.requires_grad]
        encoder = getattr(self.net, "encoder", None)
        if self.encoder_lr_factor == 1.0 or encoder is None:
            return [{"params": trainable}]
        lr = getattr(self.optimizer_factory, "keywords", {}).get("lr")
        if lr is None:
            raise ValueError(f"model.encoder_lr_factor={self.encoder_lr_factor} needs the optimizer's lr in its config (model.optimizer.lr)")
        in_encoder = {id(p) for p in encoder.parameters()}
        groups = [{"params": [p for p in trainable if id(p) in in_encoder], "lr": lr * self.encoder_lr_factor},
                  {"params": [p for p in trainable if id(p) not in in_encoder]}]
        return [g for g in groups if g["params"]]

    def configure_optimizers(self) -> Any:
        optimizer = self.optimizer_factory(params=self.parameter_groups())
        if self.scheduler_factory is None:
            return optimizer
        kwargs: dict[str, Any] = {}
        if "total_steps" in inspect.signature(self.scheduler_factory).parameters:
            kwargs["total_steps"] = int(self.trainer.estimated_stepping_batches)
        scheduler = self.scheduler_factory(optimizer=optimizer, **kwargs)
        return {"optimizer": optimizer, "lr_scheduler": {"scheduler": scheduler, "interval": "step"}}
