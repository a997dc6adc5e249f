"""DiceLoss: the hand case, present versus all classes."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from tconvseg.losses import DiceLoss
from tests.losses.cases import hand_case, random_case

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
