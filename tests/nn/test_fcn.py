"""FCN models: the contract (N, C, H, W) -> (N, K, H, W) for any H, W above the minimum."""

import pytest
import torch
from torch import nn

from tconvseg.nn import (
    FCN,
    DecoderBlock,
    EncoderDecoder,
    FCNDecoder,
    plain_conv_encoder,
    torchvision_encoder,
)

ENCODERS = ["resnet18", "resnet34", "resnet50", "vgg16_bn", "mobilenet_v3_large"]
TOPOLOGIES = ["32s", "16s", "8s", "full"]


@pytest.fixture(scope="module")
def encoders():
    return {name: torchvision_encoder(name) for name in ENCODERS}


@pytest.mark.parametrize("topology", TOPOLOGIES)
@pytest.mark.parametrize("name", ENCODERS)
def test_every_encoder_and_topology_restores_odd_sizes(encoders, name, topology):
    model = FCN(encoders[name], 5, topology=topology, decoder_channels=16 if topology == "full" else None, refine=int(topology == "full"))
    x = torch.randn(2, 3, 37, 45)
    y = model(x)
    assert y.shape == (2, 5, 37, 45)
    y.square().mean().backward()
    assert model.decoder.final_up.weight.grad is not None


@pytest.mark.parametrize("size", [(97, 131), (360, 480), (127, 64)])
def test_resnet18_fcn8s_trains_at_odd_sizes_with_batch_of_one(size):
    model = FCN("resnet18", 11, topology="8s", decoder_channels=32, refine=1).train()
    y = model(torch.randn(1, 3, *size))
    assert y.shape == (1, 11, *size)
    y.square().mean().backward()
    assert all(p.grad is not None for p in model.parameters())


@pytest.mark.parametrize("size", [(1, 1), (33, 1), (2, 97)])
def test_resnet18_fcn8s_down_to_one_pixel(size):
    # Batch norm in training mode needs more than one value per channel, so these run in eval mode.
    model = FCN("resnet18", 11, topology="8s", decoder_channels=32, refine=1).eval()
    with torch.no_grad():
        assert model(torch.randn(1, 3, *size)).shape == (1, 11, *size)


def test_decoder_walks_the_encoder_in_reverse():
    model = FCN("resnet18", 11, topology="8s")
    assert model.decoder.skip_stages == [3, 2]
    assert [str(b.up.step) for b in model.decoder.blocks] == ["k3 s2 p1", "k3 s2 p1"]
    assert str(model.decoder.final_up.step) == "k19 s8 p9"
    assert isinstance(model.decoder.project, nn.Identity)  # paper FCN: decoding in class space


def test_full_topology_uses_every_stage_and_concat_works():
    enc = plain_conv_encoder([{"channels": 8}, {"channels": 16}, {"channels": 32, "kernel": 5, "stride": 3}])
    model = FCN(enc, 3, topology="full", decoder_channels=8, fusion="concat", refine=1)
    assert model.decoder.skip_stages == [1, 0]
    assert model(torch.randn(2, 3, 29, 50)).shape == (2, 3, 29, 50)


def test_bad_inputs_and_arguments_are_explained():
    model = FCN("vgg16_bn", 4, topology="32s")
    with pytest.raises(ValueError, match="input size 31x40 is below this encoder's minimum 32x32"):
        model(torch.randn(1, 3, 31, 40))
    with pytest.raises(ValueError, match=r"expects input \(N, 3, H, W\), got shape \(1, 1, 40, 40\)"):
        model(torch.randn(1, 1, 40, 40))
    with pytest.raises(ValueError, match="topology must be one of"):
        FCN(plain_conv_encoder([{"channels": 4}]), 2, topology="4s")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="needs 3 encoder stages, the encoder has 2"):
        FCN(plain_conv_encoder([{"channels": 4}, {"channels": 4}]), 2, topology="8s")


def test_torch_export_of_one_model():
    model = FCN(plain_conv_encoder([{"channels": 4}, {"channels": 8}, {"channels": 8}]), 3, topology="8s").eval()
    x = torch.randn(1, 3, 45, 37)
    exported = torch.export.export(model, (x,))
    assert torch.allclose(exported.module()(x), model(x), atol=1e-5)


def test_foreign_encoder_in_a_few_lines():
    """The README's example: decoder blocks on an encoder tconvseg knows nothing about."""
    down1 = nn.Sequential(nn.Conv2d(3, 16, 5, stride=2, padding=2), nn.ReLU())
    down2 = nn.Sequential(nn.Conv2d(16, 32, 3, stride=3, padding=1), nn.ReLU())
    up2 = DecoderBlock(32, 16, 16, step=down2)   # matched to down2, fuses down1's output
    up1 = DecoderBlock(16, 3, 8, step=down1)     # matched to down1, fuses the image

    x = torch.randn(2, 3, 101, 67)
    f1 = down1(x)
    y = up1(up2(down2(f1), f1), x)
    assert y.shape == (2, 8, 101, 67)



def test_fcn_is_an_encoder_decoder_with_aux_stages():
    model = FCN("resnet18", 11, topology="8s", aux_stages=[-2, 2])
    assert isinstance(model, EncoderDecoder) and isinstance(model.decoder, FCNDecoder)
    assert model.aux_heads.stages == [3, 2]
    assert FCN("resnet18", 11).aux_heads is None


def test_checkpoints_of_the_flat_fcn_still_load():
    # Before the decoder was its own part, FCN's decoder layers sat at the top level.
    model = FCN(plain_conv_encoder([{"channels": 4}, {"channels": 8}, {"channels": 8}]), 3, decoder_channels=4, refine=1)
    flat = {k.replace("decoder.project.", "head.").replace("decoder.", ""): v for k, v in model.state_dict().items()}
    assert "final_up.weight" in flat and "head.weight" in flat
    fresh = FCN(plain_conv_encoder([{"channels": 4}, {"channels": 8}, {"channels": 8}]), 3, decoder_channels=4, refine=1)
    fresh.load_state_dict(flat)  # strict
    assert all(torch.equal(a, b) for a, b in zip(fresh.state_dict().values(), model.state_dict().values()))
    # ... also inside the training system, whose keys carry the prefix "net.".
    holder = nn.Module()
    holder.net = fresh
    holder.load_state_dict({f"net.{k}": v for k, v in flat.items()})
