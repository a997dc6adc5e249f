"""The small helpers of tconvseg.nn.shapes: the one pair helper and the minimum input size of a chain."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tconvseg.nn.shapes import (
    DownStep,
    as_pair,
    compose,
    conv_out_size,
    min_input_size,
    step_between,
)


@pytest.mark.parametrize(
    ("value", "expected"),
    [(3, (3, 3)), ((2, 5), (2, 5)), ([4], (4, 4)), ([1, 0], (1, 0)), (range(2, 4), (2, 3))],
)
def test_as_pair_takes_what_torch_layers_take(value, expected) -> None:
    assert as_pair(value, "kernel") == expected


@pytest.mark.parametrize(
    ("value", "minimum", "match"),
    [
        ((1, 2, 3), None, r"kernel=\(1, 2, 3\) is invalid; expected an int or a pair of such ints"),
        ((), None, r"kernel=\(\) is invalid"),
        ((1.5, 2), None, r"kernel=\(1.5, 2\) is invalid"),
        (True, None, r"kernel=True is invalid"),
        ((2, False), None, r"kernel=\(2, False\) is invalid"),
        ((0, 4), 1, r"kernel=\(0, 4\) is invalid; expected an int >= 1 or a pair of such ints"),
        (-1, 0, r"kernel=-1 is invalid; expected an int >= 0"),
    ],
)
def test_as_pair_names_the_value_it_refuses(value, minimum, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        as_pair(value, "kernel", minimum=minimum)



def _chain_yields_a_pixel(steps: list[DownStep], n: int, axis: int) -> bool:
    for step in steps:
        e, p, s = step.effective_kernel[axis], step.padding[axis], step.stride[axis]
        if n + 2 * p < e:
            return False
        n = conv_out_size(n, step.kernel[axis], s, p, step.dilation[axis])
    return True


@settings(max_examples=200, deadline=None)
@given(st.lists(st.builds(DownStep, st.integers(1, 7), st.integers(1, 4), st.integers(0, 3), st.integers(1, 3)), max_size=5))
def test_min_input_size_is_the_smallest_size_the_chain_accepts(chain: list[DownStep]) -> None:
    h, w = min_input_size(chain)
    for axis, n in ((0, h), (1, w)):
        assert _chain_yields_a_pixel(chain, n, axis)
        assert n == 1 or not _chain_yields_a_pixel(chain, n - 1, axis)


def test_min_input_size_examples() -> None:
    assert min_input_size([]) == (1, 1)
    assert min_input_size([DownStep(2, 2)] * 5) == (32, 32)  # VGG's five 2x2 pools
    assert min_input_size([DownStep(7, 2, 3), DownStep(3, 2, 1)]) == (1, 1)  # ResNet stem
    assert min_input_size([DownStep((3, 1), 1), DownStep(2, 2)]) == (4, 2)


def test_step_between_composes_a_slice_of_the_chain() -> None:
    chain = [DownStep(7, 2, 3), DownStep(3, 2, 1), DownStep(3, 2, 1)]
    assert step_between(chain, -1, 2) == compose(chain)
    assert step_between(chain, 0, 2) == DownStep(3, 2, 1).then(DownStep(3, 2, 1))
    assert step_between(chain, 1, 1).is_identity
    with pytest.raises(ValueError, match=r"need -1 <= finer <= coarser < 3, got finer=2, coarser=1"):
        step_between(chain, 2, 1)
    assert step_between(chain, -1, -1).is_identity  # the input to itself
    with pytest.raises(ValueError, match=r"coarser=-2"):
        step_between(chain, -1, -2)  # no negative stage indices: normalise them first

