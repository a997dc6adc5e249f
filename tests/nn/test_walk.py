"""step_of predicts the real output size of layers, blocks and backbones."""

from __future__ import annotations

import pytest
import torch
import torchvision
from torch import nn
from torchvision.models.vgg import cfgs, make_layers

from tconvseg.nn import walk
from tconvseg.nn.shapes import DownStep
from tconvseg.nn.walk import register_step_rule, step_of

SIZES = [(17, 17), (33, 45), (97, 131)]


def _forward_size(module: nn.Module, in_channels: int, size: tuple[int, int]) -> tuple[int, int] | None:
    """Real output ``(h, w)``, or ``None`` when PyTorch refuses the size (too small)."""
    module.eval()
    try:
        with torch.no_grad():
            y = module(torch.zeros(1, in_channels, *size))
    except RuntimeError:
        return None
    return tuple(y.shape[-2:])  # type: ignore[return-value]


def _check(module: nn.Module, in_channels: int, size: tuple[int, int]) -> tuple[int, int] | None:
    step = step_of(module)
    real = _forward_size(module, in_channels, size)
    if real is None:
        # The composed step can only be more permissive than the chain, never less.
        return None
    assert step.out_size(size) == real, f"{type(module).__name__} with step {step} at {size}"
    return real


def _check_too_small(module: nn.Module, in_channels: int, size: tuple[int, int]) -> None:
    with pytest.raises(ValueError):
        step_of(module).out_size(size)
    assert _forward_size(module, in_channels, size) is None


# --- single layers -----------------------------------------------------------------------------

LAYERS = {
    "conv k3 s2 p1": nn.Conv2d(2, 3, 3, 2, 1),
    "conv k(3,5) s(2,3) p(0,2) d(2,1)": nn.Conv2d(2, 3, (3, 5), (2, 3), (0, 2), (2, 1)),
    "conv same k4 d2": nn.Conv2d(2, 3, 4, padding="same", dilation=2),
    "conv same k(3,6)": nn.Conv2d(2, 3, (3, 6), padding="same", padding_mode="reflect"),
    "conv valid k5 s2 d2": nn.Conv2d(2, 3, 5, stride=2, padding="valid", dilation=2),
    "conv 1x1 s2": nn.Conv2d(2, 3, 1, 2),
    "maxpool k3 s2 p1": nn.MaxPool2d(3, 2, 1),
    "maxpool k(3,2) default stride": nn.MaxPool2d((3, 2)),
    "maxpool k3 s1 p1 d2": nn.MaxPool2d(3, 1, 1, dilation=2),
    "avgpool k2": nn.AvgPool2d(2),
    "avgpool k(3,5) s(2,3) p(1,2)": nn.AvgPool2d((3, 5), (2, 3), (1, 2)),
    "sequential": nn.Sequential(nn.Conv2d(2, 4, 7, 2, 3), nn.BatchNorm2d(4), nn.ReLU(), nn.MaxPool2d(3, 2, 1),
                                nn.Conv2d(4, 4, 3, 1, 1), nn.Dropout2d(), nn.Conv2d(4, 2, 3, 2, 0, dilation=2)),
    "nested sequential": nn.Sequential(nn.Sequential(nn.Conv2d(2, 2, 3, 2)), nn.Sequential(nn.Identity(), nn.AvgPool2d(3, 3))),
}


@pytest.mark.parametrize("size", SIZES + [(5, 8), (1, 2)])
@pytest.mark.parametrize("name", LAYERS)
def test_single_layers_and_sequentials(name: str, size: tuple[int, int]) -> None:
    _check(LAYERS[name], 2, size)


def test_layer_steps() -> None:
    assert step_of(nn.Conv2d(1, 1, 3, 2, 1)) == DownStep(3, 2, 1)
    assert step_of(nn.Conv2d(1, 1, 5, padding="same")).is_identity
    assert step_of(nn.Conv2d(1, 1, 5, stride=2, padding="valid", dilation=2)) == DownStep(5, 2, 0, 2)
    assert step_of(nn.MaxPool2d((3, 2))) == DownStep((3, 2), (3, 2), 0)
    assert step_of(nn.AvgPool2d(2)) == DownStep(2, 2, 0)
    assert step_of(nn.ReLU()).is_identity
    # The 3x3 p1 conv, norm, activation and dropout keep the size and drop out of the composition.
    assert step_of(LAYERS["sequential"]) == DownStep(7, 2, 3).then(DownStep(3, 2, 1)).then(DownStep(3, 2, 0, 2))


def test_too_small_inputs_fail_on_both_sides() -> None:
    _check_too_small(nn.Conv2d(2, 2, 5), 2, (4, 9))
    _check_too_small(nn.Sequential(nn.Conv2d(2, 2, 3, 2), nn.Conv2d(2, 2, 3, 2)), 2, (6, 6))


# --- torchvision blocks and backbones ----------------------------------------------------------


@pytest.fixture(scope="module")
def resnet18() -> nn.Module:
    return torchvision.models.resnet18().eval()


@pytest.fixture(scope="module")
def resnet50() -> nn.Module:
    return torchvision.models.resnet50().eval()


@pytest.mark.parametrize("size", SIZES)
def test_resnet18_layer2_basic_blocks(resnet18: nn.Module, size: tuple[int, int]) -> None:
    assert step_of(resnet18.layer2) == DownStep(3, 2, 1)
    assert step_of(resnet18.layer2[1]).is_identity
    _check(resnet18.layer2, 64, size)
    _check(resnet18.layer2[0], 64, size)


@pytest.mark.parametrize("size", SIZES)
def test_resnet50_layer2_bottlenecks(resnet50: nn.Module, size: tuple[int, int]) -> None:
    assert step_of(resnet50.layer2) == DownStep(3, 2, 1)
    _check(resnet50.layer2, 256, size)
    _check(resnet50.layer2[0], 256, size)


@pytest.mark.parametrize("size", SIZES)
def test_resnet18_body(resnet18: nn.Module, size: tuple[int, int]) -> None:
    body = nn.Sequential(*list(resnet18.children())[:-2])  # up to layer4, without avgpool / fc
    assert step_of(body).stride == (32, 32)
    _check(body, 3, size)


def test_dilated_resnet50_layers() -> None:
    model = torchvision.models.resnet50(replace_stride_with_dilation=[False, True, True]).eval()
    for name in ("layer3", "layer4"):
        assert step_of(getattr(model, name)).stride == (1, 1)
    body = nn.Sequential(*list(model.children())[:-2])
    assert step_of(body).stride == (8, 8)
    for size in [(33, 45), (97, 131)]:
        _check(body, 3, size)


def test_vgg16_bn_features() -> None:
    features = make_layers(cfgs["D"], batch_norm=True)  # exactly vgg16_bn().features, no classifier
    assert step_of(features) == DownStep(32, 32, 0)
    for size in [(33, 45), (97, 131)]:
        _check(features, 3, size)
    _check_too_small(features, 3, (17, 17))  # five 2x2 pools need at least 32 pixels


@pytest.mark.parametrize("dilated", [False, True])
def test_mobilenet_v3_large_features_child_by_child(dilated: bool) -> None:
    features = torchvision.models.mobilenet_v3_large(dilated=dilated).features.eval()
    assert step_of(features).stride == ((16, 16) if dilated else (32, 32))
    for size in SIZES:
        _check(features, 3, size)
        x = torch.zeros(1, 3, *size)
        for i, child in enumerate(features):
            with torch.no_grad():
                y = child(x)
            assert step_of(child).out_size(x.shape[-2:]) == tuple(y.shape[-2:]), f"features[{i}] at {tuple(x.shape)}"
            x = y


# --- errors ------------------------------------------------------------------------------------


@pytest.mark.parametrize("pool", [nn.MaxPool2d(2, ceil_mode=True), nn.AvgPool2d(3, 2, ceil_mode=True)])
def test_ceil_mode_pooling_is_refused(pool: nn.Module) -> None:
    with pytest.raises(ValueError, match=r"ceil_mode=True.*use ceil_mode=False"):
        step_of(nn.Sequential(nn.Conv2d(3, 3, 3), pool))


@pytest.mark.parametrize("pool", [nn.AdaptiveAvgPool2d(1), nn.AdaptiveMaxPool2d((2, 3))])
def test_global_pooling_in_main_path_is_refused(pool: nn.Module) -> None:
    name = type(pool).__name__
    with pytest.raises(ValueError, match=rf"{name} in the main path maps every size to a fixed size"):
        step_of(nn.Sequential(nn.Conv2d(3, 3, 3, 2), pool))


def test_whole_classifier_is_refused(resnet18: nn.Module) -> None:
    with pytest.raises(ValueError, match=r"AdaptiveAvgPool2d"):
        step_of(resnet18)


# --- custom blocks -----------------------------------------------------------------------------


class TwoPath(nn.Module):
    """A residual block whose projection branch has a name the walker does not know."""

    def __init__(self) -> None:
        super().__init__()
        self.pre = nn.Conv2d(3, 8, 3, 1, 1)
        self.proj = nn.Conv2d(3, 8, 1, 2)
        self.main = nn.Conv2d(8, 8, 3, 2, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.main(self.pre(x)) + self.proj(x)


class Gate(nn.Module):
    """Channel gate: its 1x1 conv runs on a pooled copy, so the block keeps the size."""

    def __init__(self) -> None:
        super().__init__()
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Conv2d(3, 3, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * torch.sigmoid(self.fc(self.pool(x)))


class Shortcut(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.body = nn.Conv2d(3, 3, 3, 2, 1)
        self.downsample = nn.Conv2d(3, 3, 1, 2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.body(x) + self.downsample(x)


@pytest.fixture
def isolated_rules(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(walk, "_RULES", dict(walk._RULES))


def test_register_step_rule_for_custom_block(isolated_rules: None) -> None:
    block = TwoPath()
    assert step_of(block) != DownStep(3, 2, 1)  # the generic walk wrongly chains the side branch
    register_step_rule(TwoPath, lambda m: (m.pre, m.main))
    assert step_of(block) == DownStep(3, 2, 1)
    for size in SIZES:
        _check(block, 3, size)
    # Inside a Sequential the rule applies as well.
    seq = nn.Sequential(nn.Conv2d(3, 3, 3, 2), block)
    for size in SIZES:
        _check(seq, 3, size)


def test_register_step_rule_returning_none_keeps_size(isolated_rules: None) -> None:
    with pytest.raises(ValueError, match="AdaptiveAvgPool2d"):
        step_of(Gate())
    register_step_rule(Gate, lambda m: None)
    assert step_of(Gate()).is_identity
    _check(nn.Sequential(nn.Conv2d(3, 3, 3, 2), Gate()), 3, (33, 45))


def test_shortcut_named_downsample_is_skipped() -> None:
    assert step_of(Shortcut()) == DownStep(3, 2, 1)
    for size in SIZES:
        _check(Shortcut(), 3, size)


@pytest.mark.parametrize(
    "leaf",
    [nn.ConvTranspose2d(3, 3, 2, 2), nn.PixelShuffle(2), nn.PixelUnshuffle(2), nn.LPPool2d(2, 2),
     nn.FractionalMaxPool2d(2, output_size=5)],
)
def test_resizing_leaves_are_refused_not_read_as_size_preserving(leaf: nn.Module) -> None:
    with pytest.raises(ValueError, match=rf"{type(leaf).__name__} changes the spatial size"):
        step_of(nn.Sequential(nn.Conv2d(3, 3, 3), leaf))


def test_subclass_rule_beats_base_class_rule(isolated_rules: None) -> None:
    class StridedTwice(torchvision.models.resnet.BasicBlock):
        """A BasicBlock whose forward applies conv1 (stride 2) twice: not what the base rule says."""

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return self.conv1(self.conv1(x))

    register_step_rule(StridedTwice, lambda m: (m.conv1, m.conv1))
    block = StridedTwice(3, 3, stride=2, downsample=nn.Conv2d(3, 3, 1, 2))
    assert step_of(block) == DownStep(3, 2, 1).then(DownStep(3, 2, 1))
    for size in SIZES:
        _check(block, 3, size)
