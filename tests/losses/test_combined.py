"""CombinedLoss: a weighted sum whose parts share weight and ignore_index."""

from __future__ import annotations

import functools
import math

import pytest
import torch

from tconvseg.losses import CombinedLoss, CrossEntropy, DiceLoss, LovaszSoftmax
from tests.losses.cases import hand_case, random_case

# --- combination ------------------------------------------------------------------------------


def test_combined_loss_is_the_weighted_sum_of_its_parts():
    logits, target = hand_case()
    loss = CombinedLoss(losses=[CrossEntropy, LovaszSoftmax], factors=[1.0, 0.5])
    # ln(8/3) / 2 (cross-entropy hand case) + 0.5 * 7/16 (Lovász hand case).
    assert loss(logits, target).item() == pytest.approx(math.log(8 / 3) / 2 + 0.5 * 7 / 16, rel=1e-6)


def test_combined_loss_passes_weight_and_ignore_index_to_its_parts():
    weight = torch.tensor([1.0, 2.0, 3.0, 4.0])
    loss = CombinedLoss(weight, 255, losses=[CrossEntropy, functools.partial(DiceLoss, smooth=0.5)])
    for part in loss.losses:
        assert part.ignore_index == 255 and torch.equal(part.weight, weight)
    logits, target = random_case(seed=6)
    expected = CrossEntropy(weight, 255)(logits, target) + DiceLoss(weight, 255, smooth=0.5)(logits, target)
    torch.testing.assert_close(loss(logits, target), expected)
    loss.set_weight(torch.ones(4))
    assert all(torch.equal(part.weight, torch.ones(4)) for part in loss.losses)


def test_combined_loss_accepts_built_parts_with_the_same_ignore_index():
    logits, target = random_case(seed=7)
    loss = CombinedLoss(ignore_index=255, losses=[CrossEntropy(ignore_index=255), LovaszSoftmax], factors=[2.0, 1.0])
    expected = 2.0 * CrossEntropy(ignore_index=255)(logits, target) + LovaszSoftmax(ignore_index=255)(logits, target)
    torch.testing.assert_close(loss(logits, target), expected)
