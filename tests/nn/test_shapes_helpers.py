"""The small helpers of tconvseg.nn.shapes: the one pair helper and the minimum input size of a chain."""

from __future__ import annotations

import pytest

from tconvseg.nn.shapes import as_pair


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

