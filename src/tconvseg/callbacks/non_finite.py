"""StopOnNonFinite: a NaN or infinite loss or gradient stops training, naming the step."""

from __future__ import annotations

import math

import lightning as L
import torch


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
