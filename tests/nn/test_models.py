"""EncoderDecoder: the one model contract, the aux interface, and a new decoder in a few lines."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from tconvseg.nn import (
    FCN,
    EncoderDecoder,
    MatchedConvTranspose2d,
    UNet,
    compose,
    encoder_decoder,
    plain_conv_encoder,
)

# Odd steps (stride 3, kernel 5) so that sizes that are not multiples of anything still round-trip.
STAGES = [{"channels": 6}, {"channels": 8, "kernel": 5, "stride": 3}, {"channels": 10}]


# --- the README's "Adding a decoder" example, verbatim ----------------------------------------
class CoarseDecoder(nn.Module):
    """Project the coarsest stage and undo the whole encoder in one matched transposed conv."""

    def __init__(self, encoder_channels, encoder_steps, width: int = 32):
        super().__init__()
        self.out_channels = width
        self.project = nn.Conv2d(encoder_channels[-1], width, 1)
        self.up = MatchedConvTranspose2d(width, width, compose(encoder_steps))

    def forward(self, features, size):
        return self.up(self.project(features[-1]), size)  # (N, width, H, W)
# ----------------------------------------------------------------------------------------------


def test_a_new_decoder_in_a_few_lines():
    model = encoder_decoder("resnet18", 5, decoder=CoarseDecoder)
    assert str(model.decoder.up.step) == "k67 s32 p33"  # the whole ResNet undone in one step
    assert model(torch.randn(2, 3, 97, 131)).shape == (2, 5, 97, 131)


def test_a_new_decoder_from_a_config():
    from hydra.utils import instantiate

    cfg = {
        "_target_": "tconvseg.nn.encoder_decoder",
        "encoder": {"_target_": "tconvseg.nn.plain_conv_encoder", "stages": STAGES},
        "decoder": {"_target_": f"{__name__}.CoarseDecoder", "_partial_": True, "width": 7},
        "aux_stages": [],
    }
    # As the training entry point builds it: num_classes comes from the data.
    model = instantiate(cfg, num_classes=4, _convert_="all")
    assert isinstance(model, EncoderDecoder) and model.decoder.out_channels == 7
    assert model(torch.randn(1, 3, 29, 31)).shape == (1, 4, 29, 31)


@pytest.mark.parametrize("training", [True, False])
@pytest.mark.parametrize("size", [(97, 131), (29, 30), (17, 11)])
def test_contract_at_any_size_batch_of_one(size, training):
    enc = plain_conv_encoder(STAGES)
    model = EncoderDecoder(enc, CoarseDecoder(enc.out_channels, enc.steps, 8), nn.Conv2d(8, 3, 1)).train(training)
    y = model(torch.randn(1, 3, *size))
    assert y.shape == (1, 3, *size) and y.dtype == torch.float32
    y.mean().backward()
    assert model.decoder.up.weight.grad is not None and model.encoder.stages[0][0][0].weight.grad is not None


def test_min_input_size_is_the_encoders_and_is_enforced():
    model = encoder_decoder(plain_conv_encoder([{"channels": 4, "kernel": 5, "padding": 0}]), 2, decoder=CoarseDecoder)
    assert model.min_input_size == (5, 5)
    assert model.eval()(torch.randn(1, 3, 5, 5)).shape == (1, 2, 5, 5)
    with pytest.raises(ValueError, match="input size 4x9 is below this encoder's minimum 5x5"):
        model(torch.randn(1, 3, 4, 9))
    with pytest.raises(ValueError, match=r"EncoderDecoder expects input \(N, 3, H, W\), got shape \(3, 9, 9\)"):
        model(torch.randn(3, 9, 9))


def test_a_decoder_that_misses_the_input_size_is_named():
    class Forgetful(CoarseDecoder):
        def forward(self, features, size):
            return self.up(self.project(features[-1]))  # no output size: output_padding 0

    model = encoder_decoder(plain_conv_encoder(STAGES), 2, decoder=Forgetful)
    with pytest.raises(RuntimeError, match=r"Forgetful returned size \(\d+, \d+\) for input size \(31, 31\)"):
        model(torch.randn(1, 3, 31, 31))


def test_forward_with_aux_without_aux_heads_returns_an_empty_list():
    model = encoder_decoder(plain_conv_encoder(STAGES), 2, decoder=CoarseDecoder).eval()
    x = torch.randn(2, 3, 23, 40)
    logits, aux = model.forward_with_aux(x)
    assert aux == [] and model.aux_heads is None
    assert torch.equal(logits, model(x))


@pytest.mark.parametrize("build", [FCN, UNet, lambda e, k, **kw: encoder_decoder(e, k, decoder=CoarseDecoder, **kw)])
def test_every_builder_gives_aux_logits_at_the_input_size(build):
    model = build(plain_conv_encoder(STAGES), 5, aux_stages=[-2, 0]).train()
    x = torch.randn(1, 3, 41, 26)
    logits, aux = model.forward_with_aux(x)
    assert logits.shape == (1, 5, 41, 26)
    assert [a.shape for a in aux] == [(1, 5, 41, 26)] * 2
    assert model.aux_heads.stages == [1, 0]


def test_aux_heads_never_run_in_forward():
    model = FCN(plain_conv_encoder(STAGES), 3, aux_stages=[-2])
    calls = []
    model.aux_heads.register_forward_hook(lambda *_: calls.append(1))
    for mode in (True, False):
        model.train(mode)(torch.randn(2, 3, 33, 35)).sum().backward()
    assert calls == []
    assert all(p.grad is None for p in model.aux_heads.parameters())


def test_aux_losses_reach_the_aux_heads_and_the_encoder_below_their_stage():
    model = FCN(plain_conv_encoder(STAGES), 3, aux_stages=[1]).train()
    _, aux = model.forward_with_aux(torch.randn(2, 3, 33, 35))
    aux[0].square().mean().backward()
    assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in model.aux_heads.parameters())
    assert model.encoder.stages[1][0][0].weight.grad is not None
    assert model.encoder.stages[2][0][0].weight.grad is None  # above the aux stage: untouched
    assert all(p.grad is None for p in model.decoder.parameters())


def test_torch_export_of_a_model_with_aux_heads_exports_the_main_path():
    model = FCN(plain_conv_encoder(STAGES), 3, aux_stages=[-2]).eval()
    x = torch.randn(1, 3, 45, 37)
    exported = torch.export.export(model, (x,))
    assert torch.allclose(exported.module()(x), model(x), atol=1e-5)
