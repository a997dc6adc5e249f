"""The from-scratch transposed convolution against the seed's numbers and against PyTorch."""

from __future__ import annotations

import random
from dataclasses import dataclass

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from tconvseg.nn.reference import conv_transpose2d_reference, deconv_2d
from tconvseg.nn.shapes import DownStep

# --- the seed document's worked examples, number for number -------------------------------------

SEED_X = [[0.0, 1.0], [2.0, 3.0]]
SEED_Y = [[0.0, 0.0, 1.0], [0.0, 4.0, 6.0], [4.0, 12.0, 9.0]]
ONES_NO_PADDING = [
    [1.0, 2.0, 3.0, 2.0, 1.0],
    [2.0, 4.0, 6.0, 4.0, 2.0],
    [3.0, 6.0, 9.0, 6.0, 3.0],
    [2.0, 4.0, 6.0, 4.0, 2.0],
    [1.0, 2.0, 3.0, 2.0, 1.0],
]
ONES_PADDING_2_1 = [[6.0, 9.0, 6.0]]


def _torch_tconv(x: torch.Tensor, k: torch.Tensor, **kwargs) -> torch.Tensor:
    """The seed's way: an ``nn.ConvTranspose2d`` whose weight is overwritten with ``k``."""
    tconv = nn.ConvTranspose2d(1, 1, kernel_size=tuple(k.shape[-2:]), bias=False, **kwargs)
    tconv.weight.data = k.reshape(1, 1, *k.shape[-2:])
    with torch.no_grad():
        return tconv(x.reshape(1, 1, *x.shape[-2:]))


def test_seed_deconv_2x2_all_three_ways() -> None:
    X, K = torch.tensor(SEED_X), torch.tensor(SEED_X)
    expected = torch.tensor(SEED_Y)
    assert torch.equal(deconv_2d(X, K), expected)
    assert torch.equal(conv_transpose2d_reference(X.reshape(1, 1, 2, 2), K.reshape(1, 1, 2, 2)), expected.reshape(1, 1, 3, 3))
    assert torch.equal(_torch_tconv(X, K), expected.reshape(1, 1, 3, 3))


def test_seed_ones_no_padding() -> None:
    X, K = torch.ones(3, 3), torch.ones(3, 3)
    expected = torch.tensor(ONES_NO_PADDING)
    assert torch.equal(deconv_2d(X, K), expected)
    assert torch.equal(conv_transpose2d_reference(X.reshape(1, 1, 3, 3), K.reshape(1, 1, 3, 3))[0, 0], expected)
    assert torch.equal(_torch_tconv(X, K)[0, 0], expected)


def test_seed_ones_padding_2_1() -> None:
    X, K = torch.ones(1, 1, 3, 3), torch.ones(1, 1, 3, 3)
    expected = torch.tensor(ONES_PADDING_2_1)
    assert torch.equal(conv_transpose2d_reference(X, K, padding=(2, 1))[0, 0], expected)
    assert torch.equal(_torch_tconv(X, K, padding=(2, 1))[0, 0], expected)
    # Padding crops the full output: rows 2..2 and columns 1..3 of the unpadded 5x5.
    assert torch.equal(deconv_2d(X[0, 0], K[0, 0])[2:3, 1:4], expected)


def test_seed_round_trip_restores_16() -> None:
    torch.manual_seed(0)
    X = torch.rand(size=(1, 10, 16, 16))
    conv = nn.Conv2d(10, 20, kernel_size=5, padding=2, stride=3)
    tconv = nn.ConvTranspose2d(20, 10, kernel_size=5, padding=2, stride=3)
    with torch.no_grad():
        assert tconv(conv(X)).shape == X.shape
        y = conv(X)
        assert conv_transpose2d_reference(y, tconv.weight, tconv.bias, stride=3, padding=2).shape == X.shape


@pytest.mark.parametrize("n", [17, 18])
def test_seed_round_trip_needs_output_padding_off_the_stride_grid(n: int) -> None:
    # k5 s3 p2 maps 16, 17 and 18 all to 6; the plain transposed conv returns 16, only
    # n = 1 (mod 3) round-trips without help.
    torch.manual_seed(0)
    X = torch.rand(size=(1, 10, n, n))
    conv = nn.Conv2d(10, 20, kernel_size=5, padding=2, stride=3)
    plain = nn.ConvTranspose2d(20, 10, kernel_size=5, padding=2, stride=3)
    with torch.no_grad():
        y = conv(X)
        assert y.shape[-2:] == (6, 6)
        assert plain(y).shape[-2:] == (16, 16) != (n, n)
        op = DownStep(kernel=5, stride=3, padding=2).output_padding_for(y.shape[-2:], (n, n))
        assert op == (n - 16, n - 16)
        fixed = nn.ConvTranspose2d(20, 10, kernel_size=5, padding=2, stride=3, output_padding=op)
        assert fixed(y).shape == X.shape
        assert conv_transpose2d_reference(y, fixed.weight, fixed.bias, stride=3, padding=2, output_padding=op).shape == X.shape


def test_seed_size_formulas_on_reference() -> None:
    x, k = torch.ones(1, 1, 4, 6), torch.ones(1, 1, 3, 2)
    assert conv_transpose2d_reference(x, k).shape[-2:] == (4 + 3 - 1, 6 + 2 - 1)
    assert conv_transpose2d_reference(x, k, padding=(1, 0)).shape[-2:] == (4 + 3 - 2 - 1, 6 + 2 - 1)
    assert conv_transpose2d_reference(x, k, stride=(2, 3)).shape[-2:] == (2 * 3 + 3, 3 * 5 + 2)


# --- equality with torch.nn.functional.conv_transpose2d ----------------------------------------


@dataclass(frozen=True)
class Config:
    batch: int | None  # None: unbatched input
    c_in_per_group: int
    c_out_per_group: int
    groups: int
    size: tuple[int, int]
    kernel: tuple[int, int]
    stride: tuple[int, int]
    padding: tuple[int, int]
    output_padding: tuple[int, int]
    dilation: tuple[int, int]
    bias: bool


def _random_config(seed: int) -> Config:
    rng = random.Random(seed)
    while True:
        stride = (rng.randint(1, 3), rng.randint(1, 3))
        dilation = (rng.randint(1, 3), rng.randint(1, 3))
        kernel = (rng.randint(1, 4), rng.randint(1, 4))
        size = (rng.randint(1, 5), rng.randint(1, 5))
        padding = (rng.randint(0, 3), rng.randint(0, 3))
        output_padding = tuple(rng.randint(0, max(s, d) - 1) for s, d in zip(stride, dilation))
        out = [
            (n - 1) * s - 2 * p + d * (k - 1) + o + 1
            for n, s, p, d, k, o in zip(size, stride, padding, dilation, kernel, output_padding)
        ]
        if min(out) >= 1:
            break
    return Config(
        batch=rng.choice([None, 1, 2, 3]),
        c_in_per_group=rng.randint(1, 3),
        c_out_per_group=rng.randint(1, 3),
        groups=rng.randint(1, 3),
        size=size,
        kernel=kernel,
        stride=stride,
        padding=padding,
        output_padding=output_padding,  # type: ignore[arg-type]
        dilation=dilation,
        bias=rng.random() < 0.7,
    )


def _tensors(cfg: Config, seed: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor | None]:
    gen = torch.Generator().manual_seed(seed)
    c_in = cfg.c_in_per_group * cfg.groups
    shape = (c_in, *cfg.size) if cfg.batch is None else (cfg.batch, c_in, *cfg.size)
    x = torch.randn(shape, generator=gen, dtype=torch.float64)
    w = torch.randn(c_in, cfg.c_out_per_group, *cfg.kernel, generator=gen, dtype=torch.float64)
    b = torch.randn(cfg.c_out_per_group * cfg.groups, generator=gen, dtype=torch.float64) if cfg.bias else None
    return x, w, b


def _run(fn, cfg: Config, x: torch.Tensor, w: torch.Tensor, b: torch.Tensor | None, grad_out_seed: int):
    x, w = x.clone().requires_grad_(), w.clone().requires_grad_()
    b = b.clone().requires_grad_() if b is not None else None
    y = fn(x, w, b, cfg.stride, cfg.padding, cfg.output_padding, cfg.groups, cfg.dilation)
    g = torch.randn(y.shape, generator=torch.Generator().manual_seed(grad_out_seed), dtype=y.dtype)
    y.backward(g)
    return y.detach(), x.grad, w.grad, (b.grad if b is not None else None)


@pytest.mark.parametrize("seed", range(300))
def test_matches_torch_forward_and_gradients(seed: int) -> None:
    cfg = _random_config(seed)
    x, w, b = _tensors(cfg, seed)
    got = _run(conv_transpose2d_reference, cfg, x, w, b, seed)
    want = _run(F.conv_transpose2d, cfg, x, w, b, seed)
    for name, g, t in zip(("output", "grad input", "grad weight", "grad bias"), got, want):
        if t is None:
            assert g is None, f"{name}: unexpected gradient for {cfg}"
            continue
        assert g.shape == t.shape, f"{name}: shape {tuple(g.shape)} != torch {tuple(t.shape)} for {cfg}"
        torch.testing.assert_close(g, t, rtol=1e-10, atol=1e-10, msg=lambda m, name=name: f"{name} differs for {cfg}: {m}")


def test_accepts_lists_and_keywords_like_torch() -> None:
    x, w = torch.randn(2, 4, 5, 6, dtype=torch.float64), torch.randn(4, 3, 3, 2, dtype=torch.float64)
    kwargs = dict(stride=[2, 1], padding=[1, 0], output_padding=[1, 0], groups=2, dilation=[1, 2])
    torch.testing.assert_close(conv_transpose2d_reference(x, w, **kwargs), F.conv_transpose2d(x, w, **kwargs))


def test_float32_matches_torch_within_float32_tolerance() -> None:
    x, w = torch.randn(2, 3, 7, 5), torch.randn(3, 4, 3, 3)
    torch.testing.assert_close(
        conv_transpose2d_reference(x, w, stride=2, padding=1), F.conv_transpose2d(x, w, stride=2, padding=1)
    )


# --- argument validation -----------------------------------------------------------------------

X4, W4 = torch.zeros(1, 4, 3, 3), torch.zeros(4, 2, 3, 3)


@pytest.mark.parametrize(
    ("args", "kwargs", "match"),
    [
        ((torch.zeros(1, 3, 3, 3), torch.zeros(3, 1, 3, 3)), {"groups": 2}, r"input channels 3 .*divisible by groups=2"),
        ((X4, W4), {"stride": 2, "output_padding": 2}, r"output_padding\[0\]=2 .*stride \(2\) or dilation \(1\).*at most 1"),
        ((X4, W4), {"output_padding": (0, 1)}, r"output_padding\[1\]=1 .*at most 0"),
        ((X4, W4), {"dilation": 2, "output_padding": 2}, r"output_padding\[0\]=2 .*dilation \(2\)"),
        ((X4, W4), {"padding": 3}, r"negative or zero output size \(-1, -1\)"),
        ((X4, W4), {"stride": 0}, r"stride and dilation must be >= 1.*stride=\(0, 0\)"),
        ((X4, W4), {"dilation": (1, 0)}, r"dilation=\(1, 0\)"),
        ((X4, W4), {"padding": -1}, r"padding=\(-1, -1\)"),
        ((X4, W4), {"output_padding": -1}, r"output_padding=\(-1, -1\)"),
        ((X4, W4), {"stride": (1, 2, 3)}, r"stride=\(1, 2, 3\) is invalid; expected an int or a pair"),
        ((X4, W4), {"groups": 0}, r"groups must be a positive int, got 0"),
        ((X4, torch.zeros(3, 2, 3, 3)), {}, r"weight.shape\[0\] must equal the input channels 4"),
        ((X4, W4, torch.zeros(3)), {}, r"bias must have shape \(2,\).*got \(3,\)"),
        ((X4, W4, torch.zeros(2)), {"groups": 2}, r"bias must have shape \(4,\)"),
        ((torch.zeros(4, 3), W4), {}, r"input must be .*got shape \(4, 3\)"),
        ((X4, torch.zeros(4, 2, 3)), {}, r"weight must be .*got shape \(4, 2, 3\)"),
        ((X4, W4.double()), {}, r"share a dtype"),
    ],
)
def test_reference_rejects_what_torch_rejects(args, kwargs, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        conv_transpose2d_reference(*args, **kwargs)
    with pytest.raises(RuntimeError):  # torch rejects the same call (as RuntimeError)
        F.conv_transpose2d(*args, **kwargs)


def test_deconv_2d_rejects_non_2d() -> None:
    with pytest.raises(ValueError, match=r"2-D X and K.*\(1, 2, 2\)"):
        deconv_2d(torch.zeros(1, 2, 2), torch.zeros(2, 2))


def test_reference_is_differentiable_with_unbatched_input() -> None:
    x = torch.randn(2, 4, 4, dtype=torch.float64, requires_grad=True)
    w = torch.randn(2, 3, 2, 2, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(lambda a, b: conv_transpose2d_reference(a, b, stride=2), (x, w))
