"""Contracts every loss keeps (ignore, gradients, weights) and its errors for bad inputs and options."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from tconvseg.losses import CombinedLoss, CrossEntropy, DiceLoss, LovaszSoftmax, OhemCrossEntropy
from tests.losses.cases import FACTORIES, each_loss, hand_case, random_case

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
