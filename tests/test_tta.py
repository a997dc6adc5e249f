"""Test-time augmentation: the averaged probabilities of an image, its mirror image and its resized copies."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from tconvseg.inference.tta import TestTimeAugmentation, check_tta, check_tta_scales, flip_probabilities, multiscale_probabilities, tta_logits


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
    with pytest.raises(ValueError, match=r"tta='vflip' is not a test-time augmentation; expected one of none, flip, multiscale, multiscale_flip"):
        check_tta("vflip")


def _by_hand(net, x, scale, flip):
    """One scale's probabilities at x's size, written out step by step."""
    h, w = x.shape[-2:]
    size = (round(h * scale), round(w * scale))
    small = F.interpolate(x, size=size, mode="bilinear", align_corners=False, antialias=scale < 1)
    probs = net(small).softmax(1)
    if flip:
        probs = (probs + net(small.flip(-1)).softmax(1).flip(-1)) / 2
    return F.interpolate(probs, size=(h, w), mode="bilinear", align_corners=False)


@pytest.mark.parametrize("flip", [False, True])
def test_multiscale_averages_each_resized_copy_brought_back_to_the_input_size(flip):
    net, x = _asymmetric_net(), torch.randn(2, 3, 13, 17)  # odd sizes: 0.75 -> 10 x 13, 1.5 -> 20 x 26 (rounded)
    scales = (0.75, 1.0, 1.5)
    manual = sum(_by_hand(net, x, s, flip) if s != 1.0 else (flip_probabilities(net, x) if flip else net(x).softmax(1)) for s in scales) / 3
    got = multiscale_probabilities(net, x, scales, flip=flip)
    assert got.shape == (2, 5, 13, 17)
    assert not torch.allclose(got, net(x).softmax(1), atol=1e-3)  # the rescaled copies do change something
    torch.testing.assert_close(got, manual)
    mode = "multiscale_flip" if flip else "multiscale"
    torch.testing.assert_close(tta_logits(net, x, mode, scales).softmax(1), manual)


def test_multiscale_at_scale_one_is_plain_or_flip():
    net, x = _asymmetric_net(), torch.randn(1, 3, 8, 9)
    torch.testing.assert_close(multiscale_probabilities(net, x, [1.0]), net(x).softmax(1))
    torch.testing.assert_close(tta_logits(net, x, "multiscale_flip", [1.0]).softmax(1), flip_probabilities(net, x))


def test_flip_modes_ignore_the_scales():
    net, x = _asymmetric_net(), torch.randn(1, 3, 8, 9)
    assert torch.equal(tta_logits(net, x, "flip", [0.5, 2.0]), tta_logits(net, x, "flip"))


def test_scales_come_back_as_floats():
    assert check_tta_scales([1, 1.25]) == (1.0, 1.25)


@pytest.mark.parametrize("scales", [[], [0], [1.0, -0.5], ["big"], None, [True]])
def test_bad_scales_are_named(scales):
    with pytest.raises(ValueError, match=r"tta_scales=.* is invalid; expected a non-empty list of resize factors > 0"):
        check_tta_scales(scales)


def test_the_wrapper_is_tta_logits_built_once_and_records_what_it_did():
    torch.manual_seed(0)
    net = torch.nn.Conv2d(3, 4, 3, padding=1)
    x = torch.randn(2, 3, 9, 11)
    for mode, scales in (("none", (1.0,)), ("flip", (1.0,)), ("multiscale_flip", (0.5, 1.0))):
        tta = TestTimeAugmentation(net, mode, scales)
        assert torch.equal(tta(x), tta_logits(net, x, mode, scales))
    assert TestTimeAugmentation(net, "flip").record() == {"mode": "flip"}
    assert TestTimeAugmentation(net, "multiscale", [0.5, 1]).record() == {"mode": "multiscale", "scales": [0.5, 1.0]}
    with pytest.raises(ValueError, match="tta='mirror' is not a test-time augmentation"):
        TestTimeAugmentation(net, "mirror")


def test_a_system_built_with_a_tta_uses_it_in_test_and_predict_steps(tmp_path):
    from tconvseg.data.datasets.info import synthetic_info
    from tconvseg.training.builders import build_system
    from tests.helpers.configs import compose_cfg

    model_cfg = compose_cfg("train", tmp_path, ["data=synthetic", "model=tiny", "model.class_weighting=null"]).model
    plain = build_system(model_cfg, synthetic_info(4)).eval()
    flipped = build_system(model_cfg, synthetic_info(4), tta={"mode": "flip"}).eval()
    flipped.load_state_dict(plain.state_dict())
    x = torch.randn(1, 3, 16, 20)
    with torch.no_grad():
        assert plain.tta.mode == "none" and torch.equal(plain.predict_step(x, 0), plain(x).argmax(1))
        assert torch.equal(flipped.predict_step(x, 0), tta_logits(plain, x, "flip").argmax(1))
    assert "tta" not in flipped.hparams  # an evaluation choice, not a property of the trained model
