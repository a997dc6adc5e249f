"""CrossEntropy and OhemCrossEntropy: hand-computed values, torch parity, hardest-pixel choice."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from tconvseg.losses import CrossEntropy, OhemCrossEntropy, SegmentationLoss
from tests.losses.cases import FACTORIES, hand_case, random_case

# --- cross-entropy ----------------------------------------------------------------------------


def test_cross_entropy_hand_case():
    logits, target = hand_case()
    # A: -ln(3/4) = ln(4/3); B: -ln(1/2) = ln 2; mean = (ln(4/3) + ln 2) / 2 = ln(8/3) / 2.
    assert CrossEntropy()(logits, target).item() == pytest.approx(math.log(8 / 3) / 2, rel=1e-6)
    # Weights (1, 3): A counts 1 (class 0), B counts 3 (class 1): (ln(4/3) + 3 ln 2) / 4.
    weighted = CrossEntropy(weight=[1.0, 3.0])(logits, target).item()
    assert weighted == pytest.approx((math.log(4 / 3) + 3 * math.log(2)) / 4, rel=1e-6)
    # Smoothing 0.2 with K=2: target distribution (0.9, 0.1) at A, (0.1, 0.9) at B.
    # A: -(0.9 ln 3/4 + 0.1 ln 1/4); B: -(0.1 + 0.9) ln 1/2 = ln 2.
    smoothed = CrossEntropy(label_smoothing=0.2)(logits, target).item()
    a = -(0.9 * math.log(0.75) + 0.1 * math.log(0.25))
    assert smoothed == pytest.approx((a + math.log(2)) / 2, rel=1e-6)


@pytest.mark.parametrize("weighted", [False, True])
@pytest.mark.parametrize("label_smoothing", [0.0, 0.15])
@pytest.mark.parametrize("ignore_index", [255, -100, 1])
def test_cross_entropy_is_exactly_torch(weighted, label_smoothing, ignore_index):
    logits, target = random_case(seed=3, ignore_index=ignore_index)
    weight = torch.tensor([0.5, 2.0, 1.0, 3.0]) if weighted else None
    ours = CrossEntropy(weight, ignore_index, label_smoothing=label_smoothing)(logits, target)
    theirs = F.cross_entropy(logits, target, weight=weight, ignore_index=ignore_index, label_smoothing=label_smoothing)
    assert torch.equal(ours, theirs)


@pytest.mark.parametrize("name", ["ce", "ce_smoothing", "ohem_ratio", "ohem_threshold", "dice", "dice_all"])
def test_only_weight_zero_pixels_give_zero_not_nan(name):
    # Median-frequency weights give 0 to classes unseen in training; F.cross_entropy is 0/0 there.
    logits, _ = random_case()
    target = torch.full(logits.shape[:1] + logits.shape[2:], 2)
    weight = torch.tensor([0.0, 0.0, 0.0, 0.0]) if name == "dice_all" else torch.tensor([1.0, 1.0, 0.0, 1.0])
    assert F.cross_entropy(logits, target, weight=weight).isnan()
    logits.requires_grad_(True)
    loss = FACTORIES[name](weight=weight)(logits, target)
    loss.backward()
    assert loss.item() == 0.0 and torch.equal(logits.grad, torch.zeros_like(logits))


# --- OHEM -------------------------------------------------------------------------------------

# Four pixels in a row, two classes; each pixel's true class scores z and the other 0, so
# p(true) = sigmoid(z). True-class probabilities, by position: 0.6, 0.2, 0.9, 0.3.
OHEM_P = [0.6, 0.2, 0.9, 0.3]


def ohem_case(targets=(0, 0, 0, 0)) -> tuple[torch.Tensor, torch.Tensor]:
    logits = torch.zeros(1, 2, 1, 4)
    for j, (p, t) in enumerate(zip(OHEM_P, targets, strict=True)):
        logits[0, t, 0, j] = math.log(p / (1 - p))
    return logits, torch.tensor([list(targets)]).reshape(1, 1, 4)


def kept_pixels(loss: SegmentationLoss, logits: torch.Tensor, target: torch.Tensor) -> set[int]:
    """Pixels (by position in the row) whose logits receive gradient."""
    logits = logits.clone().requires_grad_(True)
    loss(logits, target).backward()
    return set(torch.nonzero(logits.grad.abs().sum(dim=1).flatten()).flatten().tolist())


def test_ohem_keep_ratio_keeps_exactly_the_hardest_pixels():
    logits, target = ohem_case()
    loss = OhemCrossEntropy(keep_ratio=0.5)
    # 2 of 4 kept: the two lowest true-class probabilities, 0.2 (pixel 1) and 0.3 (pixel 3):
    # mean(-ln 0.2, -ln 0.3) = (ln 5 + ln(10/3)) / 2.
    assert loss(logits, target).item() == pytest.approx((math.log(5) + math.log(10 / 3)) / 2, rel=1e-6)
    assert kept_pixels(loss, logits, target) == {1, 3}
    assert kept_pixels(OhemCrossEntropy(keep_ratio=0.25), logits, target) == {1}
    assert kept_pixels(OhemCrossEntropy(keep_ratio=0.6), logits, target) == {0, 1, 3}  # ceil(2.4) = 3


def test_ohem_threshold_with_min_kept():
    logits, target = ohem_case()
    # p < 0.5: pixels 1 and 3.
    assert kept_pixels(OhemCrossEntropy(threshold=0.5), logits, target) == {1, 3}
    # p < 0.25: pixel 1 only, but at least 3 kept: then the 3 hardest.
    assert kept_pixels(OhemCrossEntropy(threshold=0.25, min_kept=3), logits, target) == {0, 1, 3}
    # keep_ratio is a floor under the threshold rule: p < 0.25 keeps 1, the ratio keeps 2.
    assert kept_pixels(OhemCrossEntropy(threshold=0.25, keep_ratio=0.5), logits, target) == {1, 3}
    # min_kept beyond the number of valid pixels keeps them all.
    assert kept_pixels(OhemCrossEntropy(threshold=0.25, min_kept=100), logits, target) == {0, 1, 2, 3}


def test_ohem_nothing_below_threshold_is_zero_with_gradient():
    logits, target = ohem_case()
    logits.requires_grad_(True)
    loss = OhemCrossEntropy(threshold=0.1)(logits, target)
    loss.backward()
    assert loss.item() == 0.0 and torch.equal(logits.grad, torch.zeros_like(logits))


def test_ohem_weights_weight_the_mean_but_do_not_choose_the_pixels():
    # Targets 1, 0, 0, 1 with weights (1, 3): the kept pixels are still 1 (p=0.2, class 0, w=1)
    # and 3 (p=0.3, class 1, w=3), although class 1 weighs more:
    # (1 * ln 5 + 3 * ln(10/3)) / (1 + 3).
    logits, target = ohem_case(targets=(1, 0, 0, 1))
    loss = OhemCrossEntropy(weight=[1.0, 3.0], keep_ratio=0.5)
    assert loss(logits, target).item() == pytest.approx((math.log(5) + 3 * math.log(10 / 3)) / 4, rel=1e-6)
    assert kept_pixels(loss, logits, target) == {1, 3}


def test_ohem_keeping_everything_is_weighted_cross_entropy():
    logits, target = random_case(seed=5)
    weight = torch.tensor([0.5, 2.0, 1.0, 3.0])
    ohem = OhemCrossEntropy(weight, 255, keep_ratio=1.0)(logits, target)
    torch.testing.assert_close(ohem, CrossEntropy(weight, 255)(logits, target))


def test_ohem_counts_are_ceil_of_the_ratio_without_float_noise():
    # 0.07 * 100 = 7.000000000000001 in floating point; the kept count must be 7, not 8.
    assert OhemCrossEntropy(keep_ratio=0.07).num_kept(torch.arange(100.0)) == 7
    assert OhemCrossEntropy(keep_ratio=0.01).num_kept(torch.arange(10.0)) == 1
