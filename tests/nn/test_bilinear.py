"""Bilinear initialization: constants and linear ramps survive matched upsampling."""

import pytest
import torch
import torch.nn.functional as F

from tconvseg.nn.bilinear import bilinear_kernel_1d, fill_bilinear_, unreached_phases
from tconvseg.nn.matched import MatchedConvTranspose2d
from tconvseg.nn.shapes import DownStep


def test_fcn_kernel_for_k4_s2_is_the_classic_one():
    assert torch.allclose(bilinear_kernel_1d(4, 2), torch.tensor([0.25, 0.75, 0.75, 0.25], dtype=torch.float64))


def test_k_equal_stride_is_nearest_neighbour():
    assert torch.equal(bilinear_kernel_1d(2, 2), torch.ones(2, dtype=torch.float64))


STEPS = [
    DownStep(3, 2, 1),
    DownStep(7, 2, 3),
    DownStep(2, 2, 0),
    DownStep(4, 2, 1),
    DownStep(5, 3, 2),
    DownStep(19, 8, 9),
    DownStep(67, 32, 33),
    DownStep((3, 5), (2, 3), (1, 2)),
    DownStep(3, 2, 1, 3),
]


def _upsample(step: DownStep, x: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    up = MatchedConvTranspose2d(1, 1, step, init="bilinear").double()
    return up(x, size)


def _interior(y: torch.Tensor, step: DownStep) -> torch.Tensor:
    # Borders see a truncated triangle (zero padding), as in any bilinear transposed conv.
    mh, mw = (e + s for e, s in zip(step.effective_kernel, step.stride))
    return y[..., mh:-mh, mw:-mw]


@pytest.mark.parametrize("step", STEPS, ids=str)
def test_constant_stays_constant_in_the_interior(step):
    size = (6 * step.stride[0] * 4 + step.effective_kernel[0] * 2 + 1, 6 * step.stride[1] * 4 + step.effective_kernel[1] * 2 + 3)
    coarse = step.out_size(size)
    y = _upsample(step, torch.full((1, 1, *coarse), 2.5, dtype=torch.float64), size)
    assert y.shape[-2:] == size
    inner = _interior(y, step)
    assert inner.numel() > 0
    assert torch.allclose(inner, torch.full_like(inner, 2.5))


EXACT = [s for s in STEPS if s.dilation == (1, 1) and all(k - 1 >= 2 * (st - 1) for k, st in zip(s.kernel, s.stride))]


@pytest.mark.parametrize("step", EXACT, ids=str)
def test_linear_ramp_stays_linear_when_kernel_covers_the_triangle(step):
    size = (8 * step.stride[0] + 2 * step.effective_kernel[0] + 5, 8 * step.stride[1] + 2 * step.effective_kernel[1] + 7)
    coarse = step.out_size(size)
    rows = torch.arange(coarse[0], dtype=torch.float64)
    ramp = rows[:, None].expand(coarse).clone()[None, None]
    y = _upsample(step, ramp, size)
    inner = _interior(y, step)[0, 0]
    diffs = inner[1:, :] - inner[:-1, :]
    assert torch.allclose(diffs, torch.full_like(diffs, 1.0 / step.stride[0]))
    assert torch.allclose(inner[:, 1:], inner[:, :-1])


def test_matches_bilinear_interpolation_of_align_corners_false_at_even_factor():
    # A k4 s2 p1 bilinear transposed conv is the classic x2 bilinear upsampling.
    x = torch.randn(1, 1, 9, 11, dtype=torch.float64)
    y = _upsample(DownStep(4, 2, 1), x, (18, 22))
    ref = F.interpolate(x, scale_factor=2, mode="bilinear", align_corners=False)
    assert torch.allclose(y[..., 1:-1, 1:-1], ref[..., 1:-1, 1:-1])


def test_channels_are_upsampled_independently():
    up = MatchedConvTranspose2d(3, 3, DownStep(3, 2, 1))
    x = torch.zeros(1, 3, 5, 5)
    x[:, 1] = 1.0
    y = up(x, (9, 9))
    assert y[:, 0].abs().max() == 0 and y[:, 2].abs().max() == 0 and y[:, 1].abs().max() > 0


def test_bilinear_needs_equal_channels():
    with pytest.raises(ValueError, match="needs as many output as input channels; got 4 in and 2 out"):
        MatchedConvTranspose2d(4, 2, DownStep(3, 2, 1))
    with pytest.raises(ValueError, match="needs as many output"):
        fill_bilinear_(torch.empty(4, 2, 3, 3), (2, 2))


def test_holes_are_detected_and_warned():
    assert unreached_phases(3, 2, 2) == [1]
    assert unreached_phases(3, 2, 3) == []
    with pytest.warns(UserWarning, match="reaches no output pixel"):
        MatchedConvTranspose2d(1, 1, DownStep(3, 2, 1, 2))


def test_fixed_or_learnable():
    fixed = MatchedConvTranspose2d(2, 2, DownStep(3, 2, 1), trainable=False)
    learn = MatchedConvTranspose2d(2, 2, DownStep(3, 2, 1), trainable=True)
    assert not any(p.requires_grad for p in fixed.parameters())
    assert all(p.requires_grad for p in learn.parameters())
