"""Batch-norm running statistics recomputed for a module's current weights."""

from __future__ import annotations

import itertools
from collections.abc import Iterable

import torch
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
    norms = [m for m in module.modules() if isinstance(m, _BatchNorm)]
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
