"""Lightning callbacks that ``train(cfg)`` always adds (run facts in checkpoints, fail-fast on
non-finite numbers), and Lightning's EMA made safe for evaluating checkpoints after fitting."""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

import lightning as L
import torch
from lightning.pytorch.callbacks import EMAWeightAveraging

from tconvseg.checkpoints import CKPT_MODEL_CONFIG, CKPT_RUN_IDENTITY


class StoreRunInfo(L.Callback):
    """Writes the model config and the run identity into every checkpoint.

    The model config lets evaluation rebuild the same network; the identity (experiment, model,
    data) lets ``ckpt_path=last`` resume only a run of the same kind.
    """

    def __init__(self, model_cfg: Mapping[str, Any], identity: Mapping[str, Any]) -> None:
        self.model_cfg = dict(model_cfg)
        self.identity = dict(identity)

    def on_save_checkpoint(self, trainer: L.Trainer, pl_module: L.LightningModule, checkpoint: dict) -> None:
        checkpoint[CKPT_MODEL_CONFIG] = self.model_cfg
        checkpoint[CKPT_RUN_IDENTITY] = self.identity


class NonFiniteError(FloatingPointError):
    """Training produced a NaN / infinite loss or gradient."""


class StopOnNonFinite(L.Callback):
    """Stops training at the first non-finite loss or gradient, before the optimizer step uses it.

    Raising here means the epoch never completes, so no checkpoint of the broken weights is
    written and the last good one stays as it was.
    """

    def on_before_backward(self, trainer: L.Trainer, pl_module: L.LightningModule, loss: torch.Tensor) -> None:
        value = float(loss.detach())
        if not math.isfinite(value):
            raise NonFiniteError(
                f"non-finite training loss {value} at global step {trainer.global_step} (epoch {trainer.current_epoch}, "
                f"batch {trainer.fit_loop.epoch_loop.batch_idx}); training stopped before the optimizer step. Expected a "
                "finite loss: check the learning rate, the class weights (model.class_weighting) and the input data. "
                "The last checkpoint written before this step is intact."
            )

    def on_before_optimizer_step(self, trainer: L.Trainer, pl_module: L.LightningModule, optimizer: torch.optim.Optimizer) -> None:
        if getattr(trainer.precision_plugin, "scaler", None) is not None:
            return  # fp16 loss scaling expects occasional inf gradients and skips those steps itself
        grads = [p.grad for p in pl_module.parameters() if p.grad is not None]
        if not grads:
            return
        norms = torch._foreach_norm(grads)  # one fused pass; inf/nan survive the norm
        total = float(torch.stack([n.float() for n in norms]).sum())
        if not math.isfinite(total):
            bad = [name for name, p in pl_module.named_parameters() if p.grad is not None and not torch.isfinite(p.grad).all()]
            raise NonFiniteError(
                f"non-finite gradient at global step {trainer.global_step} (epoch {trainer.current_epoch}) in "
                f"{len(bad)} parameter(s), e.g. {bad[:3]}; training stopped before the optimizer step. Expected finite "
                "gradients: lower the learning rate or set trainer.gradient_clip_val. The last checkpoint is intact."
            )


class EMAWeights(EMAWeightAveraging):
    """Lightning's :class:`EMAWeightAveraging`; after fitting, a checkpoint is used as it is saved.

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
