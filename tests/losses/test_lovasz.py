"""LovaszSoftmax: the hand case, the integral definition, per-image and class options."""

from __future__ import annotations

import random

import pytest
import torch
import torch.nn.functional as F

from tconvseg.losses import LovaszSoftmax
from tests.losses.cases import hand_case, random_case

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
