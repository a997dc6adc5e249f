"""The UNet builder: every stage fused by concatenation, class scores at any input size."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from tconvseg.nn import FCN, EncoderDecoder, UNet, UNetDecoder, plain_conv_encoder


@pytest.mark.parametrize("training", [True, False], ids=["train", "eval"])
@pytest.mark.parametrize("size", [(97, 131), (64, 33)])
def test_resnet18_unet_restores_odd_sizes_with_batch_of_one(size, training):
    model = UNet("resnet18", 11, decoder_channels=16).train(training)
    y = model(torch.randn(1, 3, *size))
    assert y.shape == (1, 11, *size)
    y.square().mean().backward()
    assert all(p.grad is not None for p in model.parameters())


def test_unet_is_an_encoder_decoder_with_a_unet_decoder():
    model = UNet(plain_conv_encoder([{"channels": 4}, {"channels": 8, "stride": 3}, {"channels": 8}]), 3)
    assert isinstance(model, EncoderDecoder) and isinstance(model.decoder, UNetDecoder)
    assert model.decoder.skip_stages == [1, 0] and isinstance(model.head, nn.Identity)
    assert model.aux_heads is None


def test_unet_equals_the_fcn_full_concat_it_replaces():
    # unet_resnet34 used to build FCN(topology="full", fusion="concat"): same layers, same outputs.
    enc = plain_conv_encoder([{"channels": 4}, {"channels": 8, "kernel": 5, "stride": 3}, {"channels": 8}])
    unet = UNet(enc, 3, decoder_channels=8).eval()
    fcn = FCN(enc, 3, topology="full", fusion="concat", decoder_channels=8, refine=1).eval()
    fcn.load_state_dict(unet.state_dict())
    x = torch.randn(2, 3, 31, 44)
    with torch.no_grad():
        assert torch.equal(unet(x), fcn(x))


def test_unet_with_aux_heads():
    model = UNet("resnet18", 4, decoder_channels=8, aux_stages=[-2]).eval()
    with torch.no_grad():
        logits, aux = model.forward_with_aux(torch.randn(1, 3, 45, 37))
    assert logits.shape == aux[0].shape == (1, 4, 45, 37)
