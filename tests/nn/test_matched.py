"""MatchedConvTranspose2d and DecoderBlock: exact sizes for any input, clear errors otherwise."""

import pytest
import torch
import torch.nn.functional as F
from hypothesis import given, settings
from hypothesis import strategies as st
from torch import nn

from tconvseg.nn.blocks import DecoderBlock
from tconvseg.nn.matched import MatchedConvTranspose2d
from tconvseg.nn.shapes import DownStep
from tconvseg.nn.walk import step_of


@pytest.mark.filterwarnings("ignore:the matched transposed conv")
@settings(max_examples=150, deadline=None)
@given(
    k=st.integers(1, 7), s=st.integers(1, 4), p=st.integers(0, 3), d=st.integers(1, 3),
    h=st.integers(1, 40), w=st.integers(1, 40),
)
def test_undoes_its_conv_for_any_size(k, s, p, d, h, w):
    conv = nn.Conv2d(1, 2, k, s, p, d)
    step = step_of(conv)
    if h < step.min_input_size[0] or w < step.min_input_size[1]:
        return
    x = torch.zeros(1, 1, h, w)
    up = MatchedConvTranspose2d(2, 1, conv, init="default")
    assert up(conv(x), (h, w)).shape == (1, 1, h, w)


def test_reads_its_step_from_a_module_or_a_sequential():
    pool = nn.MaxPool2d(3, 2, 1)
    assert MatchedConvTranspose2d(4, 4, pool).step == DownStep(3, 2, 1)
    seq = nn.Sequential(nn.Conv2d(3, 4, 7, 2, 3), nn.ReLU(), nn.MaxPool2d(3, 2, 1))
    up = MatchedConvTranspose2d(4, 4, seq)
    assert up.step == DownStep(11, 4, 5)
    x = torch.randn(1, 3, 97, 131)
    assert up(seq(x), x.shape[-2:]).shape[-2:] == (97, 131)


def test_unreachable_target_names_the_range():
    up = MatchedConvTranspose2d(1, 1, DownStep(3, 2, 1))
    with pytest.raises(ValueError, match=r"MatchedConvTranspose2d\(k3 s2 p1\).*cannot map input size 5 to 12.*9\.\.10"):
        up(torch.zeros(1, 1, 5, 5), (12, 9))


def test_without_output_size_uses_zero_output_padding():
    up = MatchedConvTranspose2d(1, 1, DownStep(3, 2, 1))
    assert up(torch.zeros(1, 1, 5, 5)).shape[-2:] == (9, 9)


def test_matches_torch_conv_transpose_given_the_same_output_size():
    torch.manual_seed(0)
    up = MatchedConvTranspose2d(3, 5, DownStep((5, 3), (3, 2), (2, 1)), init="default")
    ref = nn.ConvTranspose2d(3, 5, (5, 3), (3, 2), (2, 1))
    ref.load_state_dict({k: v for k, v in up.state_dict().items()})
    x = torch.randn(2, 3, 7, 9)
    assert torch.allclose(up(x, (21, 18)), ref(x, output_size=(21, 18)))


def test_unknown_init_is_rejected():
    with pytest.raises(ValueError, match="init must be"):
        MatchedConvTranspose2d(1, 1, DownStep(2, 2), init="zeros")  # type: ignore[arg-type]


@pytest.mark.parametrize("fusion", ["sum", "concat"])
@pytest.mark.parametrize("init", ["bilinear", "default"])
def test_decoder_block_restores_skip_size(fusion, init):
    down = nn.Conv2d(6, 10, 3, 2, 1)
    block = DecoderBlock(10, 6, 8, down, fusion=fusion, refine=1, upsample_init=init)
    skip = torch.randn(2, 6, 45, 61)
    y = block(down(skip), skip)
    assert y.shape == (2, 8, 45, 61)
    y.sum().backward()
    assert block.up.weight.grad is not None


def test_decoder_block_norm_and_activation_are_factories():
    block = DecoderBlock(4, 4, 4, DownStep(2, 2), refine=2, norm_layer=None, activation_layer=nn.GELU)
    assert not any(isinstance(m, nn.BatchNorm2d) for m in block.modules())
    assert sum(isinstance(m, nn.GELU) for m in block.modules()) == 2


def test_decoder_block_sum_without_refine_is_fcn_skip_step():
    block = DecoderBlock(3, 5, 3, DownStep(4, 2, 1), fusion="sum", refine=0)
    x, skip = torch.randn(1, 3, 6, 6), torch.randn(1, 5, 12, 12)
    expected = block.up(x, (12, 12)) + block.skip(skip)
    assert torch.allclose(block(x, skip), expected)


def test_decoder_block_argument_errors():
    with pytest.raises(ValueError, match="fusion must be"):
        DecoderBlock(2, 2, 2, DownStep(2, 2), fusion="max")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="refine >= 1"):
        DecoderBlock(2, 2, 2, DownStep(2, 2), fusion="concat", refine=0)


@pytest.mark.filterwarnings("ignore:the matched transposed conv")
@settings(max_examples=150, deadline=None)
@given(
    k=st.integers(1, 7), s=st.integers(1, 4), p=st.integers(0, 3), d=st.integers(1, 3),
    h=st.integers(1, 40), w=st.integers(1, 40), seed=st.integers(0, 2**16),
)
def test_largest_output_padding_then_crop_equals_the_exact_output_padding(k, s, p, d, h, w, seed):
    """The claim forward() rests on: output_padding only appends rows / columns at the far edge.

    Equal up to float rounding: the two output shapes may take different convolution kernels."""
    step = DownStep(k, s, p, d)
    if h < step.min_input_size[0] or w < step.min_input_size[1]:
        return
    torch.manual_seed(seed)
    up = MatchedConvTranspose2d(2, 3, step, init="default")
    torch.nn.init.normal_(up.bias)  # a non-zero bias: rows that output_padding adds hold only the bias
    x = torch.randn(2, 2, *step.out_size((h, w)))
    exact = F.conv_transpose2d(x, up.weight, up.bias, up.stride, up.padding, up.output_padding_for(x.shape[-2:], (h, w)), 1, up.dilation)
    largest = F.conv_transpose2d(x, up.weight, up.bias, up.stride, up.padding, up.max_output_padding, 1, up.dilation)
    assert exact.shape[-2:] == (h, w)
    torch.testing.assert_close(largest[..., :h, :w], exact)
    torch.testing.assert_close(up(x, (h, w)), exact)
