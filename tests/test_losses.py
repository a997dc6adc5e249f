"""Segmentation losses: hand-computed values, the ignore/weight/zero contracts, input errors, configs."""

from __future__ import annotations

import functools
import math
import random
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
from hydra.utils import instantiate
from omegaconf import OmegaConf

from tconvseg.losses import (
    CombinedLoss,
    CrossEntropy,
    DiceLoss,
    LovaszSoftmax,
    OhemCrossEntropy,
    SegmentationLoss,
)
from tests.training_helpers import CONFIG_DIR, compose_cfg

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


# --- Lovász-softmax ---------------------------------------------------------------------------


def lovasz_by_integral(probs: list[list[float]], labels: list[int], classes: str = "present") -> float:
    """The Lovász extension from its integral definition, independent of the sorting algorithm:
    for errors m in [0, 1]^P, f(m) = integral over theta in (0, 1] of J({i : m_i >= theta}), with the
    Jaccard loss J(M) = 1 - |F minus M| / |F union M| of the set M of pixels taken as wrong, F the
    class's pixels. f is piecewise constant between the sorted error values."""
    k = len(probs[0])
    per_class = []
    for c in range(k):
        fg = {i for i, t in enumerate(labels) if t == c}
        if classes == "present" and not fg:
            continue
        errors = [abs((1.0 if i in fg else 0.0) - p[c]) for i, p in enumerate(probs)]
        levels = sorted(set(errors) | {0.0})
        total = 0.0
        for lo, hi in zip(levels, levels[1:], strict=False):
            wrong = {i for i, e in enumerate(errors) if e >= hi}
            total += (hi - lo) * (1.0 - len(fg - wrong) / len(fg | wrong))
        per_class.append(total)
    return sum(per_class) / len(per_class)


def test_lovasz_hand_case():
    logits, target = hand_case()
    # Class 0: F = {A}; errors A: 1 - 3/4 = 1/4, B: 1/2. Sorted: B, A.
    #   J({B}) = 1 - |{A}| / |{A, B}| = 1/2; J({B, A}) = 1 - 0/2 = 1.
    #   loss_0 = 1/2 * (1/2 - 0) + 1/4 * (1 - 1/2) = 3/8.
    # Class 1: F = {B}; errors A: 1/4, B: 1 - 1/2 = 1/2. Sorted: B, A.
    #   J({B}) = 1 - 0/1 = 1; J({B, A}) = 1.  loss_1 = 1/2 * 1 + 1/4 * 0 = 1/2.
    # Mean over the two present classes: 7/16.
    assert LovaszSoftmax()(logits, target).item() == pytest.approx(7 / 16, rel=1e-6)
    assert lovasz_by_integral([[0.75, 0.25], [0.5, 0.5]], [0, 1]) == pytest.approx(7 / 16)


@pytest.mark.parametrize("seed", range(5))
@pytest.mark.parametrize("classes", ["present", "all"])
def test_lovasz_matches_the_integral_definition(seed, classes):
    rng = random.Random(seed)
    k, p = 4, 7
    logits = torch.randn(1, k, 1, p, generator=torch.Generator().manual_seed(seed)) * 2
    labels = [rng.choice([0, 1, 3]) for _ in range(p)]  # class 2 absent: "all" differs from "present"
    probs = logits.softmax(dim=1)[0, :, 0, :].T.tolist()
    expected = lovasz_by_integral(probs, labels, classes)
    got = LovaszSoftmax(classes=classes)(logits, torch.tensor(labels).reshape(1, 1, p)).item()
    assert got == pytest.approx(expected, rel=1e-5)


def test_lovasz_is_zero_for_a_confident_right_answer_and_one_for_a_confident_wrong_one():
    _, target = random_case(seed=1, ignored=0.0)
    right = F.one_hot(target, 4).permute(0, 3, 1, 2).float() * 30.0
    assert LovaszSoftmax()(right, target).item() < 1e-6
    wrong = F.one_hot((target + 1) % 4, 4).permute(0, 3, 1, 2).float() * 30.0
    # Every pixel wrong with certainty: IoU 0 for every class, loss 1.
    assert LovaszSoftmax()(wrong, target).item() == pytest.approx(1.0, abs=1e-6)


def test_lovasz_per_image_is_the_mean_of_single_image_losses():
    logits, target = random_case(seed=2, n=3)
    target[1] = 255  # an image with no valid pixel is left out of the mean
    loss = LovaszSoftmax(ignore_index=255, per_image=True)(logits, target)
    singles = [LovaszSoftmax(ignore_index=255)(logits[i : i + 1], target[i : i + 1]) for i in (0, 2)]
    torch.testing.assert_close(loss, torch.stack(singles).mean())
    batch = LovaszSoftmax(ignore_index=255)(logits, target)
    assert abs(loss.item() - batch.item()) > 1e-3  # per image is a different quantity


def test_lovasz_explicit_class_list():
    logits, target = hand_case()
    # Only class 1: 1/2 (see the hand case).
    assert LovaszSoftmax(classes=[1])(logits, target).item() == pytest.approx(0.5, rel=1e-6)


def test_lovasz_ignores_class_weights():
    logits, target = random_case(seed=4)
    plain = LovaszSoftmax(ignore_index=255)(logits, target)
    weighted = LovaszSoftmax(torch.tensor([0.1, 5.0, 1.0, 2.0]), 255)(logits, target)
    assert torch.equal(plain, weighted)


# --- Dice -------------------------------------------------------------------------------------


def test_dice_hand_case():
    logits, target = hand_case()
    # smooth = 0. Class 0: 2 * 3/4 / ((3/4 + 1/2) + 1) = 2/3. Class 1: 2 * 1/2 / ((1/4 + 1/2) + 1) = 4/7.
    # Loss = 1 - (2/3 + 4/7) / 2 = 8/21.
    assert DiceLoss(smooth=0.0)(logits, target).item() == pytest.approx(8 / 21, rel=1e-6)
    # smooth = 1. Class 0: (3/2 + 1) / (9/4 + 1) = 10/13; class 1: (1 + 1) / (7/4 + 1) = 8/11.
    # Loss = mean(3/13, 3/11) = 36/143.
    assert DiceLoss(smooth=1.0)(logits, target).item() == pytest.approx(36 / 143, rel=1e-6)
    # Weights (1, 3): (1 * 3/13 + 3 * 3/11) / 4 = 75/286.
    assert DiceLoss([1.0, 3.0], smooth=1.0)(logits, target).item() == pytest.approx(75 / 286, rel=1e-6)


def test_dice_present_versus_all_classes():
    # Three classes. A: scores (ln 2, 0, 0), p = (1/2, 1/4, 1/4), target 0.
    # B: scores (0, ln 2, 0), p = (1/4, 1/2, 1/4), target 1. Class 2 is absent.
    ln2 = math.log(2.0)
    logits = torch.tensor([[[[ln2, 0.0]], [[0.0, ln2]], [[0.0, 0.0]]]])
    target = torch.tensor([[[0, 1]]])
    # smooth = 1. Classes 0 and 1: (2 * 1/2 + 1) / (3/4 + 1 + 1) = 8/11, loss 3/11 each.
    # Class 2: (0 + 1) / (1/2 + 0 + 1) = 2/3, loss 1/3.
    assert DiceLoss()(logits, target).item() == pytest.approx(3 / 11, rel=1e-6)
    assert DiceLoss(classes="all")(logits, target).item() == pytest.approx((3 / 11 + 3 / 11 + 1 / 3) / 3, rel=1e-6)


def test_dice_is_zero_for_a_confident_right_answer():
    _, target = random_case(seed=1, ignored=0.0)
    right = F.one_hot(target, 4).permute(0, 3, 1, 2).float() * 30.0
    assert DiceLoss(smooth=0.0)(right, target).item() < 1e-6


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


# --- contracts shared by every loss -----------------------------------------------------------


@each_loss
@pytest.mark.parametrize("ignore_index", [255, 0])
def test_ignored_pixels_do_not_affect_value_or_gradient(name, ignore_index):
    weight = torch.tensor([0.5, 2.0, 1.0, 3.0])
    loss = FACTORIES[name](weight=weight, ignore_index=ignore_index)
    logits, target = random_case(seed=8, ignore_index=ignore_index)
    ignored = (target == ignore_index).unsqueeze(1).expand_as(logits)
    assert ignored.any() and not ignored.all()
    changed = torch.where(ignored, torch.randn_like(logits) * 50, logits)
    changed.requires_grad_(True)
    value = loss(changed, target)
    value.backward()
    torch.testing.assert_close(value, loss(logits, target), rtol=1e-6, atol=1e-7)
    assert torch.equal(changed.grad[ignored], torch.zeros(int(ignored.sum())))


@each_loss
def test_gradients_flow(name):
    logits, target = random_case(seed=9)
    logits.requires_grad_(True)
    value = FACTORIES[name](weight=torch.ones(4), ignore_index=255)(logits, target)
    assert value.dim() == 0 and torch.isfinite(value) and value.item() > 0
    value.backward()
    assert torch.isfinite(logits.grad).all() and logits.grad.abs().sum() > 0


@each_loss
@pytest.mark.parametrize("weighted", [False, True])
def test_all_ignored_batch_gives_zero_with_gradient(name, weighted):
    logits, target = random_case(seed=10)
    target.fill_(255)
    logits.requires_grad_(True)
    value = FACTORIES[name](weight=torch.ones(4) if weighted else None, ignore_index=255)(logits, target)
    assert value.dim() == 0 and value.item() == 0.0
    value.backward()
    assert torch.equal(logits.grad, torch.zeros_like(logits))


@each_loss
def test_weight_is_a_non_persistent_buffer_that_moves_with_the_module(name):
    weight = torch.tensor([1.0, 2.0, 3.0, 4.0])
    loss = FACTORIES[name](weight=weight, ignore_index=255)
    buffers = dict(loss.named_buffers())
    assert any(key.endswith("weight") for key in buffers)
    assert not any(key.endswith("weight") for key in loss.state_dict())  # checkpoints do not depend on the loss
    weight.mul_(10)  # the loss holds a copy
    assert all(torch.equal(b, torch.tensor([1.0, 2.0, 3.0, 4.0])) for k, b in buffers.items() if k.endswith("weight"))
    moved = loss.to("meta")
    assert all(b.device.type == "meta" for k, b in moved.named_buffers() if k.endswith("weight"))


def test_weight_may_be_none_and_can_be_set_later():
    loss = CrossEntropy(ignore_index=255)
    assert loss.weight is None
    logits, target = random_case(seed=11)
    loss.set_weight([0.5, 2.0, 1.0, 3.0])
    assert "weight" in dict(loss.named_buffers())
    expected = F.cross_entropy(logits, target, weight=torch.tensor([0.5, 2.0, 1.0, 3.0]), ignore_index=255)
    assert torch.equal(loss(logits, target), expected)
    loss.set_weight(None)
    assert torch.equal(loss(logits, target), F.cross_entropy(logits, target, ignore_index=255))


# --- errors -----------------------------------------------------------------------------------

GOOD_LOGITS = torch.zeros(2, 3, 4, 5)
GOOD_TARGET = torch.zeros(2, 4, 5, dtype=torch.int64)


@each_loss
@pytest.mark.parametrize(
    ("logits", "target", "weight", "match"),
    [
        (torch.zeros(3, 4, 5), GOOD_TARGET, None, r"logits must be 4-D \(N, K, H, W\), got shape \(3, 4, 5\)"),
        (GOOD_LOGITS.long(), GOOD_TARGET, None, r"logits must be floating point, got dtype torch.int64"),
        (GOOD_LOGITS, torch.zeros(2, 4, 6, dtype=torch.int64), None, r"target must have shape \(N, H, W\) = \(2, 4, 5\).*got \(2, 4, 6\)"),
        (GOOD_LOGITS, torch.zeros(2, 1, 4, 5, dtype=torch.int64), None, r"target must have shape .*got \(2, 1, 4, 5\)"),
        (GOOD_LOGITS, GOOD_TARGET.float(), None, r"target must be int64 class indices, got dtype torch.float32"),
        (GOOD_LOGITS, GOOD_TARGET, [1.0, 1.0], r"weight has 2 entries, expected one per class: K=3"),
        (GOOD_LOGITS, torch.full((2, 4, 5), 3), None, r"target values must be in \[0, 3\) or ignore_index=255.*\[3\]"),
        (GOOD_LOGITS, torch.full((2, 4, 5), -1), None, r"target values must be in \[0, 3\) or ignore_index=255.*\[-1\]"),
    ],
    ids=["logits-3d", "logits-int", "target-size", "target-4d", "target-float", "weight-length", "target-K", "target-negative"],
)
def test_bad_inputs_raise_value_errors(name, logits, target, weight, match):
    loss = FACTORIES[name](weight=weight, ignore_index=255)
    with pytest.raises(ValueError, match=match):
        loss(logits, target)


@pytest.mark.parametrize(
    ("build", "match"),
    [
        (lambda: CrossEntropy(weight=[1.0, -1.0]), r"weight must be finite and non-negative, got \[1.0, -1.0\]"),
        (lambda: CrossEntropy(weight=[1.0, float("nan")]), r"weight must be finite and non-negative, got \[1.0, nan\]"),
        (lambda: CrossEntropy(weight=torch.ones(2, 2)), r"weight must be a non-empty 1-D .* got shape \(2, 2\)"),
        (lambda: CrossEntropy(weight=[]), r"weight must be a non-empty 1-D .* got shape \(0,\)"),
        (lambda: CrossEntropy(label_smoothing=1.5), r"label_smoothing must be in \[0, 1\], got 1.5"),
        (lambda: OhemCrossEntropy(), r"needs keep_ratio and/or threshold, got neither"),
        (lambda: OhemCrossEntropy(keep_ratio=0.0), r"keep_ratio must be in \(0, 1\], got 0.0"),
        (lambda: OhemCrossEntropy(threshold=1.5), r"threshold must be a probability in \(0, 1\], got 1.5"),
        (lambda: OhemCrossEntropy(threshold=0.7, min_kept=-1), r"min_kept must be a non-negative int, got -1"),
        (lambda: LovaszSoftmax(classes="some"), r"classes must be 'present' or 'all' or a list .* got 'some'"),
        (lambda: LovaszSoftmax(classes=[]), r"classes must not be an empty list"),
        (lambda: DiceLoss(classes=[0, 1]), r"classes must be 'present' or 'all', got \[0, 1\]"),
        (lambda: DiceLoss(smooth=-1.0), r"smooth must be >= 0, got -1.0"),
        (lambda: CombinedLoss(losses=[]), r"needs at least one loss, got none"),
        (lambda: CombinedLoss(losses=[CrossEntropy], factors=[1.0, 0.5]), r"got 2 factors for 1 losses"),
        (
            lambda: CombinedLoss(ignore_index=255, losses=[CrossEntropy(ignore_index=-100)]),
            r"a built part has ignore_index=-100, expected the combination's 255",
        ),
    ],
)
def test_bad_options_raise_value_errors(build, match):
    with pytest.raises(ValueError, match=match):
        build()


def test_lovasz_class_list_beyond_k_raises():
    logits, target = hand_case()
    with pytest.raises(ValueError, match=r"classes must be indices in \[0, 2\), got \[5\]"):
        LovaszSoftmax(classes=[0, 5])(logits, target)


def test_combined_loss_rejects_a_factory_that_builds_no_module():
    with pytest.raises(TypeError, match=r"returned function, expected an nn.Module"):
        CombinedLoss(losses=[lambda weight, ignore_index: F.cross_entropy])


# --- configs ----------------------------------------------------------------------------------

LOSS_CONFIGS = {
    "ce": CrossEntropy,
    "ohem": OhemCrossEntropy,
    "lovasz": LovaszSoftmax,
    "dice": DiceLoss,
    "ce_lovasz": CombinedLoss,
}


def test_the_loss_group_has_exactly_the_documented_options():
    assert sorted(p.stem for p in (Path(CONFIG_DIR) / "loss").glob("*.yaml")) == sorted(LOSS_CONFIGS)


@pytest.mark.parametrize("option", sorted(LOSS_CONFIGS))
def test_each_loss_config_builds_a_working_loss(option):
    path = Path(CONFIG_DIR) / "loss" / f"{option}.yaml"
    assert path.read_text().splitlines()[0] == "# @package model.loss"
    factory = instantiate(OmegaConf.load(path))
    assert isinstance(factory, functools.partial)
    weight = torch.tensor([0.5, 2.0, 1.0, 3.0])
    loss = factory(weight=weight, ignore_index=255)
    assert isinstance(loss, LOSS_CONFIGS[option]) and loss.ignore_index == 255
    logits, target = random_case(seed=12)
    logits.requires_grad_(True)
    value = loss(logits, target)
    value.backward()
    assert value.dim() == 0 and torch.isfinite(value) and value.item() > 0
    assert torch.isfinite(logits.grad).all()


@pytest.mark.parametrize("option", sorted(LOSS_CONFIGS))
def test_each_loss_config_lands_in_model_loss(option, tmp_path):
    cfg = compose_cfg("train", tmp_path, ["data=synthetic", f"loss={option}"])
    assert cfg.model.loss._target_ == f"tconvseg.losses.{LOSS_CONFIGS[option].__name__}"
    assert cfg.model.loss._partial_ is True
    assert "loss" not in cfg
