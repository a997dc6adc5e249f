"""Flip test-time augmentation: the averaged probabilities of an image and its mirror image."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from tconvseg.tta import check_tta, flip_probabilities, tta_logits


def _asymmetric_net() -> nn.Module:
    torch.manual_seed(0)
    return nn.Conv2d(3, 5, (3, 5), padding=(1, 2)).eval()  # a wide kernel: flipping the input changes the output


def test_flip_averages_the_softmax_of_the_image_and_the_flipped_back_mirror():
    net, x = _asymmetric_net(), torch.randn(2, 3, 13, 17)
    manual = (net(x).softmax(1) + torch.flip(net(torch.flip(x, dims=[3])), dims=[3]).softmax(1)) / 2
    assert not torch.allclose(net(x).softmax(1), manual, atol=1e-3)  # the augmentation does change something
    torch.testing.assert_close(flip_probabilities(net, x), manual)
    torch.testing.assert_close(tta_logits(net, x, "flip").softmax(1), manual)


def test_none_is_the_network_itself():
    net, x = _asymmetric_net(), torch.randn(1, 3, 8, 9)
    assert torch.equal(tta_logits(net, x, "none"), net(x))


def test_a_flip_invariant_network_is_unchanged_by_flip_tta():
    net, x = nn.Conv2d(3, 4, 1).eval(), torch.randn(1, 3, 8, 9)
    torch.testing.assert_close(flip_probabilities(net, x), net(x).softmax(1))


def test_unknown_mode_is_named():
    with pytest.raises(ValueError, match=r"tta='vflip' is not a test-time augmentation; expected one of none, flip"):
        check_tta("vflip")
