"""torchvision encoders: stages, steps and channels are read from the modules and predict real sizes."""

import pytest
import torch
import torchvision

from tconvseg.nn.encoders import TORCHVISION_ENCODERS, torchvision_encoder
from tconvseg.nn.shapes import DownStep

REQUIRED = ["resnet18", "resnet34", "resnet50", "vgg16_bn", "mobilenet_v3_large"]


@pytest.fixture(scope="module", params=REQUIRED)
def encoder(request):
    return torchvision_encoder(request.param)


def test_required_encoders_are_offered():
    assert set(REQUIRED) <= set(TORCHVISION_ENCODERS)


def test_stages_have_strides_2_to_32_and_predict_real_sizes(encoder):
    assert encoder.strides == [(2, 2), (4, 4), (8, 8), (16, 16), (32, 32)]
    x = torch.randn(1, 3, 97, 131)
    size = (97, 131)
    with torch.no_grad():
        features = encoder.eval()(x)
    for feature, step, channels in zip(features, encoder.steps, encoder.out_channels):
        size = step.out_size(size)
        assert tuple(feature.shape[-2:]) == size
        assert feature.shape[1] == channels


def test_resnet18_steps_are_read_from_its_layers():
    enc = torchvision_encoder("resnet18")
    assert enc.steps == [DownStep(7, 2, 3), DownStep(3, 2, 1), DownStep(3, 2, 1), DownStep(3, 2, 1), DownStep(3, 2, 1)]
    assert enc.out_channels == [64, 64, 128, 256, 512]
    assert enc.step_between(-1, 4) == DownStep(67, 32, 33)
    assert enc.min_input_size == (1, 1)


def test_vgg_minimum_size_is_32():
    assert torchvision_encoder("vgg16_bn").min_input_size == (32, 32)


def test_unknown_encoder_and_weights_are_named():
    with pytest.raises(ValueError, match="unknown torchvision encoder 'resnet7'"):
        torchvision_encoder("resnet7")
    with pytest.raises(ValueError, match="unknown weights 'IMAGENET9K'.*IMAGENET1K_V1"):
        torchvision_encoder("resnet18", weights="IMAGENET9K")


def test_pretrained_weights_load_from_torchvision_cache(tmp_path, monkeypatch):
    # torchvision downloads into $TORCH_HOME/hub/checkpoints and reuses a file already there:
    # a local copy stands in for the download, so the real loading code runs offline.
    monkeypatch.setenv("TORCH_HOME", str(tmp_path))
    weights = torchvision.models.ResNet18_Weights.IMAGENET1K_V1
    reference = torchvision.models.resnet18()
    checkpoints = tmp_path / "hub" / "checkpoints"
    checkpoints.mkdir(parents=True)
    torch.save(reference.state_dict(), checkpoints / weights.url.rsplit("/", 1)[-1])
    enc = torchvision_encoder("resnet18", weights="IMAGENET1K_V1")
    assert torch.equal(enc.stages[0][0].weight, reference.conv1.weight)
    assert torch.equal(enc.stages[4][0][0].conv1.weight, reference.layer4[0].conv1.weight)


def test_other_input_channels_replace_the_first_conv():
    enc = torchvision_encoder("resnet18", in_channels=1)
    assert enc(torch.randn(1, 1, 33, 35))[-1].shape[1] == 512
