"""Interpolating decoders on the project's own encoders (`tconvseg.peers.bilinear_fcn`, `tconvseg.peers.lraspp`):
what they replace, any H×W, aux heads, the encoder options that read ``net.encoder``, and a trained checkpoint evaluates."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from tconvseg.data.datasets.info import CAMVID
from tconvseg.nn import FCN, MatchedConvTranspose2d, UNet, efficientnet_lite_encoder, torchvision_encoder
from tconvseg.peers import InterpolateUp, LRASPPOnEncoder, bilinear_fcn, bilinear_unet, lraspp
from tconvseg.tasks.evaluate import evaluate
from tconvseg.tasks.train import train
from tconvseg.training.builders import build_system
from tconvseg.training.checkpoints import CKPT_MODEL_CONFIG, check_targets, load_checkpoint
from tests.helpers.configs import CHEAP, compose_cfg

ODD_SIZES = [(1, 1), (33, 35), (97, 131)]


def _lite0() -> nn.Module:
    return efficientnet_lite_encoder("efficientnet_lite0", weights=None)


def test_the_bilinear_fcn_is_the_matched_fcn_with_every_transposed_conv_replaced():
    torch.manual_seed(0)
    options = {"topology": "8s", "decoder_channels": 32, "refine": 1, "aux_stages": [-2]}
    matched = FCN(torchvision_encoder("mobilenet_v3_large"), 5, **options)
    peer = bilinear_fcn(torchvision_encoder("mobilenet_v3_large"), 5, **options, upsample_trainable=True)
    n_matched = sum(isinstance(m, MatchedConvTranspose2d) for m in matched.modules())
    assert n_matched == 4  # two fusions, the final step, the aux head
    assert not any(isinstance(m, MatchedConvTranspose2d) for m in peer.modules())
    assert sum(isinstance(m, InterpolateUp) for m in peer.modules()) == n_matched
    # Every other tensor is the matched model's, under the same key.
    kept = {k: v.shape for k, v in matched.state_dict().items() if ".up." not in k and "final_up" not in k and ".ups." not in k}
    assert {k: v.shape for k, v in peer.state_dict().items()} == kept


def test_the_bilinear_fcn_resizes_bilinearly():
    torch.manual_seed(0)
    peer = bilinear_fcn(torchvision_encoder("resnet18"), 3, topology="32s", decoder_channels=None).eval()
    x = torch.randn(1, 3, 45, 61)
    features = peer.encoder(x)
    expected = F.interpolate(peer.decoder.score(features[-1]), size=(45, 61), mode="bilinear", align_corners=False)
    torch.testing.assert_close(peer(x), expected)


def test_the_bilinear_fcn_needs_bilinear_init_for_its_channel_projections():
    with pytest.raises(ValueError, match=r"model.net.upsample_init='default' for the bilinear FCN peer; expected 'bilinear'"):
        bilinear_fcn(torchvision_encoder("resnet18"), 3, upsample_init="default")


@pytest.mark.parametrize("size", ODD_SIZES)
def test_both_peers_restore_any_size_on_efficientnet_lite(size):
    torch.manual_seed(0)
    models = (bilinear_fcn(_lite0(), 4, decoder_channels=16, refine=1, aux_stages=[-2]), lraspp(_lite0(), 4, aux_stages=[-2]),
              bilinear_unet(_lite0(), 4, decoder_channels=16, aux_stages=[-2]))
    for model in models:
        model.train()
        main, aux = model.forward_with_aux(torch.randn(2, 3, *size))
        assert main.shape == (2, 4, *size) and [a.shape for a in aux] == [(2, 4, *size)]
        assert model.eval()(torch.randn(1, 3, *size)).shape == (1, 4, *size)


def test_lraspp_fuses_the_stride_8_stage_with_the_coarsest():
    encoder = _lite0()
    model = LRASPPOnEncoder(encoder, 6)
    assert model.low_stage == 2 and encoder.steps[2].stride == (2, 2)
    assert model.head.low_classifier.in_channels == encoder.out_channels[2]
    assert model.head.cbr[0].in_channels == encoder.out_channels[-1]
    assert model.aux_heads is None and model.forward_with_aux(torch.randn(2, 3, 40, 40))[1] == []
    with pytest.raises(ValueError, match=r"model.net.low_stage=-1 for an encoder of 5 stages; expected a stage finer"):
        LRASPPOnEncoder(encoder, 6, low_stage=-1)


@pytest.mark.parametrize("option", ["peer_bilinear_fcn8s_efficientnet_lite0", "peer_lraspp_efficientnet_lite0", "unet_efficientnet_lite0",
                                    "peer_bilinear_unet_efficientnet_lite0"])
def test_the_model_options_build_with_the_encoder_options_that_read_it(tmp_path, option):
    cfg = compose_cfg("train", tmp_path, ["data=camvid", f"model={option}", "model.net.encoder.weights=null", "model.encoder_lr_factor=0.1"])
    system = build_system(cfg.model, CAMVID)
    assert system.net.encoder.input_normalization is not None  # the normalisation check sees the encoder
    groups = system.parameter_groups()
    assert {id(p) for p in groups[0]["params"]} == {id(p) for p in system.net.encoder.parameters()}
    assert system.net(torch.randn(1, 3, 37, 53)).shape == (1, CAMVID.num_classes, 37, 53)


@pytest.mark.parametrize("option", ["peer_bilinear_fcn8s_efficientnet_lite0", "peer_lraspp_efficientnet_lite0"])
def test_a_trained_interpolating_peer_checkpoint_evaluates(tmp_path, option):
    overrides = ["data=synthetic", f"model={option}", "model.net.encoder.weights=null", *CHEAP, "trainer.max_epochs=1",
                 "trainer.limit_train_batches=2", "validate_best=false", "model.net.aux_stages=[-2]"]
    metrics, objects = train(compose_cfg("train", tmp_path, overrides))
    checkpoint = load_checkpoint(objects["best_checkpoint"])
    check_targets(checkpoint[CKPT_MODEL_CONFIG], "peer")
    result, _ = evaluate(compose_cfg("eval", tmp_path, ["data=synthetic", "data.num_workers=0", f"ckpt_path={objects['best_checkpoint']}"]))
    assert result["val/mIoU"] == pytest.approx(metrics["val/mIoU"], abs=1e-6)


def test_the_bilinear_unet_is_the_matched_unet_without_transposed_convs():
    matched = UNet(_lite0(), 4, decoder_channels=16)
    peer = bilinear_unet(_lite0(), 4, decoder_channels=16, upsample_trainable=False)
    assert not any(isinstance(m, MatchedConvTranspose2d) for m in peer.modules())
    assert sum(isinstance(m, InterpolateUp) for m in peer.modules()) == sum(isinstance(m, MatchedConvTranspose2d) for m in matched.modules())
    with pytest.raises(ValueError, match=r"model.net.upsample_init='default' for the bilinear U-Net peer"):
        bilinear_unet(_lite0(), 4, upsample_init="default")
