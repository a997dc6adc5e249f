"""Each decoder restores the input size from the encoder's features, at odd sizes, batch 1, train and eval."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from tconvseg.nn import (
    FCNDecoder,
    SkipDecoder,
    UNetDecoder,
    plain_conv_encoder,
    torchvision_encoder,
)
from tconvseg.nn.decoders.fcn import fcn_skip_stages

# Four stages with strides 2, 3, 2, 2 and a 5x5 kernel: nothing lines up by accident.
STAGES = [{"channels": 6}, {"channels": 8, "kernel": 5, "stride": 3}, {"channels": 10}, {"channels": 12}]

DECODERS = {
    "fcn32s-class-space": lambda c, s: FCNDecoder(c, s, 5, topology="32s"),
    "fcn16s": lambda c, s: FCNDecoder(c, s, 5, topology="16s", decoder_channels=8, refine=1),
    "fcn8s-class-space": lambda c, s: FCNDecoder(c, s, 5, topology="8s"),
    "fcn-full-concat": lambda c, s: FCNDecoder(c, s, 5, topology="full", decoder_channels=8, fusion="concat", refine=1),
    "unet": lambda c, s: UNetDecoder(c, s, 5, decoder_channels=8),
    "unet-default-init": lambda c, s: UNetDecoder(c, s, 5, decoder_channels=8, refine=2, upsample_init="default"),
    "skip-stages-2-0": lambda c, s: SkipDecoder(c, s, 5, skip_stages=[2, 0], decoder_channels=8, refine=1),
}


@pytest.fixture(scope="module")
def encoder():
    return plain_conv_encoder(STAGES)


@pytest.mark.parametrize("training", [True, False], ids=["train", "eval"])
@pytest.mark.parametrize("size", [(97, 131), (37, 45), (25, 14)])
@pytest.mark.parametrize("name", DECODERS)
def test_restores_the_input_size(encoder, name, size, training):
    decoder = DECODERS[name](encoder.out_channels, encoder.steps).train(training)
    x = torch.randn(1, 3, *size)
    with torch.no_grad():
        features = encoder.eval()(x)
    y = decoder(features, size)
    assert y.shape == (1, decoder.out_channels, *size) == (1, 5, *size)
    y.square().mean().backward()
    assert decoder.final_up.weight.grad is not None
    assert all(p.grad is not None for p in decoder.parameters())


def test_the_decoder_walks_the_encoder_in_reverse(encoder):
    unet = UNetDecoder(encoder.out_channels, encoder.steps, 5)
    assert unet.skip_stages == [2, 1, 0]
    assert [str(b.up.step) for b in unet.blocks] == ["k3 s2 p1", "k3 s2 p1", "k5 s3 p2"]
    assert str(unet.final_up.step) == "k3 s2 p1"
    assert all(b.fusion == "concat" for b in unet.blocks)
    fcn = FCNDecoder(encoder.out_channels, encoder.steps, 5, topology="16s")
    assert fcn.skip_stages == [2] and str(fcn.final_up.step) == "k23 s12 p11"  # stages 0-2 undone at once


def test_resnet18_unet_at_97x131():
    enc = torchvision_encoder("resnet18")
    decoder = UNetDecoder(enc.out_channels, enc.steps, 3, decoder_channels=16).eval()
    with torch.no_grad():
        assert decoder(enc.eval()(torch.randn(1, 3, 97, 131)), (97, 131)).shape == (1, 3, 97, 131)


def test_class_space_mode_is_the_papers_decoder(encoder):
    fcn = FCNDecoder(encoder.out_channels, encoder.steps, 5, topology="8s")
    assert type(fcn.score) is nn.Conv2d and isinstance(fcn.project, nn.Identity)
    assert all(b.up.in_channels == b.up.out_channels == 5 for b in fcn.blocks)
    assert not any(isinstance(m, nn.BatchNorm2d) for m in fcn.modules())


@pytest.mark.parametrize(
    ("topology", "stages", "expected"),
    [("32s", 5, []), ("16s", 5, [3]), ("8s", 5, [3, 2]), ("full", 5, [3, 2, 1, 0]), ("full", 1, [])],
)
def test_fcn_skip_stages(topology, stages, expected):
    assert fcn_skip_stages(topology, stages) == expected


def test_bad_arguments_are_explained(encoder):
    c, s = encoder.out_channels, encoder.steps
    with pytest.raises(ValueError, match="topology must be one of"):
        FCNDecoder(c, s, 2, topology="4s")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="topology '8s' needs 3 encoder stages, the encoder has 2"):
        FCNDecoder(c[:2], s[:2], 2, topology="8s")
    with pytest.raises(ValueError, match=r"skip_stages must run coarse to fine below the coarsest stage 3, got \[0, 2\]"):
        SkipDecoder(c, s, 2, skip_stages=[0, 2])
    with pytest.raises(ValueError, match=r"skip_stages .* got \[3\]"):
        SkipDecoder(c, s, 2, skip_stages=[3])
    with pytest.raises(ValueError, match="got 3 encoder channels for 4 steps"):
        SkipDecoder(c[:3], s, 2, skip_stages=[])
    with pytest.raises(ValueError, match="refine >= 1"):
        UNetDecoder(c, s, 2, refine=0)
