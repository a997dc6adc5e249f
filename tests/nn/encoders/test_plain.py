"""plain_conv_encoder: every stage follows its config entry."""

import pytest

from tconvseg.nn.encoders import plain_conv_encoder
from tconvseg.nn.shapes import DownStep


def test_plain_encoder_follows_its_config():
    enc = plain_conv_encoder(
        [
            {"channels": 8, "kernel": 5, "stride": 3, "padding": 1},
            {"channels": 12, "kernel": [3, 5], "stride": [2, 1], "padding": [0, 2]},
            {"channels": 16, "depth": 3},
        ]
    )
    assert enc.steps == [DownStep(5, 3, 1), DownStep((3, 5), (2, 1), (0, 2)), DownStep(3, 2, 1)]
    assert enc.out_channels == [8, 12, 16]
    assert len(enc.stages[2]) == 3


def test_plain_encoder_rejects_unknown_keys():
    with pytest.raises(ValueError, match="stage 0: expected keys.*'chanels'"):
        plain_conv_encoder([{"chanels": 8}])


def test_plain_encoder_names_the_stage_of_a_bad_pair():
    with pytest.raises(ValueError, match=r"plain encoder stage 1 stride=\[2, 2, 2\] is invalid"):
        plain_conv_encoder([{"channels": 4}, {"channels": 4, "stride": [2, 2, 2]}])


def test_plain_encoder_default_padding_keeps_size_up_to_the_stride():
    enc = plain_conv_encoder([{"channels": 4, "kernel": [5, 3], "stride": 1, "dilation": [1, 2]}, {"channels": 4}])
    assert enc.steps == [DownStep.identity(), DownStep(3, 2, 1)]
