"""Batch-norm running statistics: recomputed for a module's current weights, or frozen where they are."""

from __future__ import annotations

import itertools
from collections.abc import Iterable

import torch
import torch.nn.functional as F
from torch import nn
from torch.nn.modules.batchnorm import _BatchNorm


def recompute_batch_norm(module: nn.Module, batches: Iterable[torch.Tensor]) -> bool:
    """Set every batch-norm layer's running statistics to the exact mean / variance over ``batches``.

    ``module(images)`` is called on each tensor ``(N, C, H, W)`` with the batch-norm layers in training
    mode and cumulative averaging (``momentum=None``), everything else in eval mode (dropout draws no
    random numbers) and without gradients; modes and momenta are restored afterwards. Returns False,
    changing nothing, when the module has no batch norm or ``batches`` is empty.

    Unlike ``torch.optim.swa_utils.update_bn``, which puts the whole module in training mode, only the
    batch-norm layers train here: dropout would draw from the global random stream and shift the rest
    of a training run.
    """
    # Frozen layers keep the statistics they were frozen with (resetting them here would corrupt them).
    norms = [m for m in module.modules() if isinstance(m, _BatchNorm) and not isinstance(m, FrozenStatisticsBatchNorm2d)]
    stream = iter(batches)  # streamed, not listed: a whole split's images need not fit in memory at once
    first = next(stream, None)
    if not norms or first is None:
        return False
    modes = {m: m.training for m in module.modules()}
    momenta = {m: m.momentum for m in norms}
    module.eval()
    for norm in norms:
        norm.reset_running_stats()
        norm.momentum = None
        norm.train()
    try:
        with torch.no_grad():
            for images in itertools.chain([first], stream):
                module(images)
    finally:  # modes and momenta come back even when a forward pass fails (the statistics are then partial)
        for norm, momentum in momenta.items():
            norm.momentum = momentum
        for m, mode in modes.items():
            m.train(mode)
    return True


class FrozenStatisticsBatchNorm2d(nn.BatchNorm2d):
    """A `nn.BatchNorm2d` that always normalises with its running statistics and never updates them.

    The affine weight and bias still train; only the statistics are frozen, in training mode as in eval mode.
    What fine-tuning a pretrained encoder on small batches often wants (a batch of 8 crops estimates a
    layer's mean and variance worse than ImageNet did). State dict and shapes are those of `nn.BatchNorm2d`:
    a checkpoint loads into either class. Input and output ``(N, C, H, W)``.
    """

    def forward(self, input: torch.Tensor) -> torch.Tensor:
        self._check_input_dim(input)
        return F.batch_norm(input, self.running_mean, self.running_var, self.weight, self.bias, False, 0.0, self.eps)


def freeze_batch_norm_statistics(module: nn.Module) -> int:
    """Turn every plain `nn.BatchNorm2d` inside ``module`` into a `FrozenStatisticsBatchNorm2d`, in place.

    The layers keep their parameters, buffers and state-dict keys (only their class changes), so weights
    loaded before or after the call are the ones used. Returns how many layers were frozen.
    Subclasses of `nn.BatchNorm2d` (e.g. `SyncBatchNorm` is not one, `InstanceBatchNorm2d`'s parts may be)
    are left as they are: only the exact class is frozen.
    """
    count = 0
    for layer in module.modules():
        if type(layer) is nn.BatchNorm2d:
            if layer.running_mean is None:
                raise ValueError(
                    f"freeze_batch_norm_statistics: a BatchNorm2d({layer.num_features}) has no running statistics "
                    "(track_running_stats=False); there is nothing to freeze"
                )
            layer.__class__ = FrozenStatisticsBatchNorm2d
            count += 1
    return count
