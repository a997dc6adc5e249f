"""Shared loss-test cases: hand-computed logits, random cases, every loss factory."""

from __future__ import annotations

import functools
import math

import pytest
import torch

from tconvseg.losses import (
    CombinedLoss,
    CrossEntropy,
    DiceLoss,
    LovaszSoftmax,
    OhemCrossEntropy,
)

LN3 = math.log(3.0)

#: Every loss (and the main options), built as the system builds them: factory(weight=..., ignore_index=...).
FACTORIES = {
    "ce": CrossEntropy,
    "ce_smoothing": functools.partial(CrossEntropy, label_smoothing=0.1),
    "ohem_ratio": functools.partial(OhemCrossEntropy, keep_ratio=0.5),
    "ohem_threshold": functools.partial(OhemCrossEntropy, threshold=0.7, min_kept=3),
    "lovasz": LovaszSoftmax,
    "lovasz_per_image": functools.partial(LovaszSoftmax, per_image=True),
    "lovasz_all": functools.partial(LovaszSoftmax, classes="all"),
    "dice": DiceLoss,
    "dice_all": functools.partial(DiceLoss, classes="all"),
    "ce_lovasz": functools.partial(CombinedLoss, losses=[CrossEntropy, LovaszSoftmax], factors=[1.0, 0.5]),
}
each_loss = pytest.mark.parametrize("name", sorted(FACTORIES))


def hand_case() -> tuple[torch.Tensor, torch.Tensor]:
    """1x2x1x2 logits. Pixel A: scores (ln 3, 0), so p = (3/4, 1/4), target 0.
    Pixel B: scores (0, 0), so p = (1/2, 1/2), target 1."""
    logits = torch.tensor([[[[LN3, 0.0]], [[0.0, 0.0]]]])
    return logits, torch.tensor([[[0, 1]]])


def random_case(seed: int = 0, n: int = 2, k: int = 4, h: int = 5, w: int = 6, ignore_index: int = 255, ignored: float = 0.3):
    g = torch.Generator().manual_seed(seed)
    logits = torch.randn(n, k, h, w, generator=g) * 2
    target = torch.randint(0, k, (n, h, w), generator=g)
    target[torch.rand(n, h, w, generator=g) < ignored] = ignore_index
    return logits, target
