"""Property tests for tconvseg.nn.shapes, checked against real PyTorch layers."""

from __future__ import annotations

import re

import pytest
import torch
import torch.nn.functional as F
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from tconvseg.nn.shapes import (
    DownStep,
    compose,
    conv_out_size,
    effective_kernel,
    max_output_padding,
    output_padding_for,
    tconv_out_size,
)

FAST = settings(max_examples=200, deadline=None)
SOME = settings(max_examples=100, deadline=None)

sizes = st.integers(1, 60)
kernels = st.integers(1, 6)
strides = st.integers(1, 4)
paddings = st.integers(0, 3)
dilations = st.integers(1, 3)


@st.composite
def steps(draw: st.DrawFn, max_stride: int = 4) -> DownStep:
    pair = lambda s: st.tuples(s, s)  # noqa: E731
    return DownStep(
        kernel=draw(pair(kernels)),
        stride=draw(pair(st.integers(1, max_stride))),
        padding=draw(pair(paddings)),
        dilation=draw(pair(dilations)),
    )


def _conv_chain(chain: list[DownStep], size: tuple[int, int]) -> tuple[int, int]:
    """Output size of real ``F.conv2d`` layers with the chain's parameters (1 channel, no data)."""
    x = torch.zeros(1, 1, *size)
    for st_ in chain:
        x = F.conv2d(x, torch.zeros(1, 1, *st_.kernel), stride=st_.stride, padding=st_.padding, dilation=st_.dilation)
    return tuple(x.shape[-2:])  # type: ignore[return-value]


def _chain_size(chain: list[DownStep], size: tuple[int, int]) -> tuple[int, int] | None:
    """Size through the chain step by step, or ``None`` when some step has no output pixel."""
    for st_ in chain:
        if any(n < m for n, m in zip(size, st_.min_input_size)):
            return None
        size = st_.out_size(size)
    return size


# --- the seed's formulas and the torch layer shapes --------------------------------------------


@FAST
@given(n=sizes, k=kernels, s=strides, p=paddings)
def test_seed_formulas_are_special_cases(n: int, k: int, s: int, p: int) -> None:
    assert tconv_out_size(n, k) == n + k - 1
    assert tconv_out_size(n, k, padding=p) == n + k - 2 * p - 1
    assert tconv_out_size(n, k, stride=s) == s * (n - 1) + k


@FAST
@given(n=sizes, k=kernels, s=strides, p=paddings, d=dilations, data=st.data())
def test_tconv_out_size_matches_conv_transpose2d(n: int, k: int, s: int, p: int, d: int, data) -> None:
    op = data.draw(st.integers(0, max_output_padding(s, d)))
    expected = tconv_out_size(n, k, s, p, d, op)
    assume(expected >= 1)
    y = F.conv_transpose2d(torch.zeros(1, 1, n, 1), torch.zeros(1, 1, k, 1), stride=(s, 1), padding=(p, 0),
                           output_padding=(op, 0), dilation=(d, 1))
    assert y.shape[2] == expected


@FAST
@given(n=sizes, k=kernels, s=strides, p=paddings, d=dilations)
def test_conv_out_size_matches_conv2d(n: int, k: int, s: int, p: int, d: int) -> None:
    x, w = torch.zeros(1, 1, n, 3), torch.zeros(1, 1, k, 1)
    if n + 2 * p < effective_kernel(k, d):
        with pytest.raises(ValueError, match=rf"input size {n} is too small.*need n >= {effective_kernel(k, d) - 2 * p}"):
            conv_out_size(n, k, s, p, d)
        with pytest.raises(RuntimeError):
            F.conv2d(x, w, stride=(s, 1), padding=(p, 0), dilation=(d, 1))
        return
    y = F.conv2d(x, w, stride=(s, 1), padding=(p, 0), dilation=(d, 1))
    assert y.shape[2] == conv_out_size(n, k, s, p, d)


@FAST
@given(n=sizes, k=kernels, s=strides, d=dilations, data=st.data())
def test_conv_out_size_matches_max_and_avg_pool(n: int, k: int, s: int, d: int, data) -> None:
    p = data.draw(st.integers(0, k // 2))  # torch: pooling padding at most half the kernel
    assume(n + 2 * p >= effective_kernel(k, d))
    x = torch.zeros(1, 1, n, 2)
    assert F.max_pool2d(x, (k, 1), (s, 1), (p, 0), (d, 1)).shape[2] == conv_out_size(n, k, s, p, d)
    assume(n + 2 * p >= k)
    assert F.avg_pool2d(x, (k, 1), (s, 1), (p, 0)).shape[2] == conv_out_size(n, k, s, p)


# --- exact composition -------------------------------------------------------------------------


@FAST
@given(a=steps(), b=steps())
def test_then_is_exact_composition(a: DownStep, b: DownStep) -> None:
    ab = a.then(b)
    checked = 0
    for n in range(1, 70):
        size = (n, n + 3)
        chained = _chain_size([a, b], size)
        if chained is None:
            continue
        assert ab.out_size(size) == chained, f"{a} then {b} = {ab} at {size}"
        checked += 1
    assume(checked > 0)


@SOME
@given(a=steps(max_stride=3), b=steps(max_stride=3), h=st.integers(1, 50), w=st.integers(1, 50))
def test_then_matches_real_conv_layers(a: DownStep, b: DownStep, h: int, w: int) -> None:
    chained = _chain_size([a, b], (h, w))
    assume(chained is not None)
    assert _conv_chain([a, b], (h, w)) == chained == a.then(b).out_size((h, w))
    assert _conv_chain([a.then(b)], (h, w)) == chained


@FAST
@given(chain=st.lists(steps(max_stride=3), min_size=3, max_size=5), extra=st.lists(st.integers(1, 3), max_size=3))
def test_compose_of_several_steps_and_size_preserving_skip(chain: list[DownStep], extra: list[int]) -> None:
    # Sprinkle in size-preserving steps (3x3 p1, dilated 3x3 p=d, 1x1 p0) that skipping must not miss.
    for i, d in enumerate(extra):
        chain.insert((i * 2) % (len(chain) + 1), DownStep(kernel=3, padding=d, dilation=d) if d > 1 else DownStep(3, 1, 1))
    chain.append(DownStep(1, 1, 0))
    full, skipped = compose(chain, skip_size_preserving=False), compose(chain)
    assert skipped.stride == full.stride
    checked = 0
    for n in range(1, 200, 3):
        size = (n, n + 1)
        chained = _chain_size(chain, size)
        if chained is None:
            continue
        assert full.out_size(size) == skipped.out_size(size) == chained, [str(s) for s in chain]
        checked += 1
    assume(checked > 0)


def test_compose_examples() -> None:
    # ResNet stem: conv k7 s2 p3, then maxpool k3 s2 p1  ->  k11 s4 p5 (one well-known step).
    stem = compose([DownStep(7, 2, 3), DownStep(3, 1, 1), DownStep(3, 2, 1)])
    assert stem == DownStep(11, 4, 5)
    assert compose([]) == DownStep.identity()
    assert compose([DownStep(3, 1, 1)]) == DownStep.identity()
    assert compose([DownStep(3, 1, 1)], skip_size_preserving=False) == DownStep(3, 1, 1)
    assert DownStep(3, 2, 1, 2).then(DownStep()) == DownStep(3, 2, 1, 2)


@FAST
@given(step=steps(), n=st.integers(1, 80))
def test_undilated_and_min_input_size(step: DownStep, n: int) -> None:
    lo = step.min_input_size
    assert min(step.out_size(lo)) >= 1  # the smallest size has an output
    for axis in (0, 1):
        if lo[axis] > 1:
            bad = list(lo)
            bad[axis] -= 1
            with pytest.raises(ValueError):
                step.out_size(bad)
    assume(min(n - m for m in lo) >= 0)
    assert step.undilated().out_size((n, n)) == step.out_size((n, n))


@FAST
@given(step=steps(), n=st.integers(1, 80))
def test_is_size_preserving_means_identity_size_map(step: DownStep, n: int) -> None:
    if step.is_size_preserving:
        assert step.out_size((n, n)) == (n, n)


# --- the key property: a matched transposed conv undoes the step --------------------------------


@FAST
@given(step=steps(), h=st.integers(1, 60), w=st.integers(1, 60))
def test_matched_tconv_restores_every_size(step: DownStep, h: int, w: int) -> None:
    assume(h >= step.min_input_size[0] and w >= step.min_input_size[1])
    m = _conv_chain([step], (h, w))
    assert m == step.out_size((h, w))
    op = step.output_padding_for(m, (h, w))
    assert all(0 <= o < s for o, s in zip(op, step.stride)), f"output_padding {op} for {step}"
    y = F.conv_transpose2d(torch.zeros(1, 1, *m), torch.zeros(1, 1, *step.kernel), stride=step.stride,
                           padding=step.padding, output_padding=op, dilation=step.dilation)
    assert tuple(y.shape[-2:]) == (h, w), f"{step}: {(h, w)} -> {m} -> {tuple(y.shape[-2:])} with output_padding {op}"


@FAST
@given(chain=st.lists(steps(max_stride=3), min_size=2, max_size=4), h=st.integers(1, 120), w=st.integers(1, 120))
def test_one_tconv_undoes_a_composed_chain(chain: list[DownStep], h: int, w: int) -> None:
    assume(_chain_size(chain, (h, w)) is not None)
    m = _conv_chain(chain, (h, w))
    total = compose(chain)
    op = total.output_padding_for(m, (h, w))
    assert all(0 <= o < s for o, s in zip(op, total.stride))
    y = F.conv_transpose2d(torch.zeros(1, 1, *m), torch.zeros(1, 1, *total.kernel), stride=total.stride,
                           padding=total.padding, output_padding=op, dilation=total.dilation)
    assert tuple(y.shape[-2:]) == (h, w), f"{total} from {[str(s) for s in chain]}"


@FAST
@given(n=sizes, k=kernels, s=strides, p=paddings, d=dilations)
def test_output_padding_for_is_the_remainder(n: int, k: int, s: int, p: int, d: int) -> None:
    assume(n + 2 * p >= effective_kernel(k, d))
    m = conv_out_size(n, k, s, p, d)
    op = output_padding_for(m, n, k, s, p, d)
    assert op == (n + 2 * p - effective_kernel(k, d)) % s
    assert tconv_out_size(m, k, s, p, d, op) == n


@FAST
@given(m=st.integers(1, 40), k=kernels, s=strides, p=paddings, d=dilations, target=st.integers(1, 200))
def test_output_padding_for_rejects_unreachable_targets(m: int, k: int, s: int, p: int, d: int, target: int) -> None:
    base = tconv_out_size(m, k, s, p, d)
    hi = base + max_output_padding(s, d)
    if base <= target <= hi:
        assert output_padding_for(m, target, k, s, p, d) == target - base
        return
    with pytest.raises(ValueError) as info:
        output_padding_for(m, target, k, s, p, d)
    message = str(info.value)
    assert f"reachable sizes are {max(base, 1)}..{hi}" in message
    assert f"map input size {m} to {target}" in message
    assert f"[0, {max_output_padding(s, d)}]" in message


def test_output_padding_for_examples() -> None:
    assert output_padding_for(6, 17, kernel=5, stride=3, padding=2) == 1
    with pytest.raises(ValueError, match=re.escape("reachable sizes are 16..18")):
        output_padding_for(6, 19, kernel=5, stride=3, padding=2)
    with pytest.raises(ValueError, match=re.escape("reachable sizes are 16..18")):
        DownStep(5, 3, 2).output_padding_for((6, 6), (15, 16))
    # Dilation lets output_padding exceed stride - 1, but only sizes < base + stride invert the conv.
    assert output_padding_for(5, 10, kernel=3, stride=1, padding=0, dilation=2) == 1
    with pytest.raises(ValueError, match=r"sizes must be >= 1"):
        output_padding_for(1, 0, kernel=1, stride=2, padding=1)


# --- DownStep construction and printing --------------------------------------------------------


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"kernel": 0}, r"kernel, stride and dilation must be >= 1"),
        ({"stride": (1, 0)}, r"kernel, stride and dilation must be >= 1, got k1 s1x0 p0"),
        ({"dilation": 0}, r"must be >= 1"),
        ({"padding": (0, -1)}, r"padding must be >= 0, got k1 s1 p0x-1"),
        ({"kernel": (1, 2, 3)}, r"kernel=\(1, 2, 3\) is invalid; expected an int or a pair of such ints"),
        ({"stride": (1.5, 2)}, r"stride=\(1.5, 2\) is invalid"),
    ],
)
def test_downstep_validation(kwargs: dict, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        DownStep(**kwargs)


def test_downstep_str_and_normalisation() -> None:
    assert str(DownStep(3, 2, 1)) == "k3 s2 p1"
    assert str(DownStep((3, 5), (1, 2), (1, 0), (2, 2))) == "k3x5 s1x2 p1x0 d2"
    assert str(DownStep()) == "k1 s1 p0"
    assert DownStep([3, 3], [2, 2], [1, 1]) == DownStep(3, 2, 1)
    assert DownStep.identity().is_identity and not DownStep(3, 2, 1).is_identity
    assert DownStep(3, 1, 2, 2).is_size_preserving and not DownStep(3, 1, 2).is_size_preserving
    assert DownStep(3, 2, 1, 2).undilated() == DownStep(5, 2, 1)
    assert DownStep(3, 2, 1, 2).effective_kernel == (5, 5)
    assert DownStep(5, 3, 2).min_input_size == (1, 1)
    assert DownStep((7, 3), 2, 1).min_input_size == (5, 1)
