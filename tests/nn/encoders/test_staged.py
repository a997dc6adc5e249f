"""StagedEncoder: stages grouped from layers, walked steps checked by one probe forward."""

import pytest
from torch import nn

from tconvseg.nn.encoders import StagedEncoder


def test_a_wrongly_walked_block_is_caught_by_the_probe():
    class Sneaky(nn.Module):
        def __init__(self):
            super().__init__()
            self.conv = nn.Conv2d(3, 3, 3, 1, 1)

        def forward(self, x):
            return self.conv(x)[..., ::2, ::2]  # downsamples without a strided layer

    with pytest.raises(ValueError, match=r"stage 0 \(Sneaky\) produced size \(19, 21\).*register_step_rule"):
        StagedEncoder([Sneaky()])


def test_from_layers_groups_full_resolution_layers_into_the_first_stage():
    layers = [nn.Conv2d(3, 4, 3, 1, 1), nn.ReLU(), nn.MaxPool2d(2), nn.Conv2d(4, 4, 3, 1, 1), nn.MaxPool2d(2)]
    enc = StagedEncoder.from_layers(layers)
    assert [len(s) for s in enc.stages] == [4, 1]
    assert enc.strides == [(2, 2), (4, 4)]

