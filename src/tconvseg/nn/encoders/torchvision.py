"""Encoders built from torchvision classification backbones.

Each backbone's feature layers are listed once (``_FEATURE_LAYERS``); the stages, their steps and
their channels are then read from the modules by `StagedEncoder.from_layers`. The walker
learns torchvision's residual and inverted-residual blocks here, where they are used: their main
path is listed, their shortcut left out (``register_step_rule`` at the end of this file).
Pretrained weights come through torchvision's weights enums and are downloaded only when asked
for (``weights="DEFAULT"`` or a named enum member), into torchvision's cache (``$TORCH_HOME``).
"""

from __future__ import annotations

from collections.abc import Callable

import torchvision
from torch import nn
from torchvision.models.mobilenetv3 import InvertedResidual
from torchvision.models.resnet import BasicBlock, Bottleneck
from torchvision.ops.misc import SqueezeExcitation

from tconvseg.nn.encoders.staged import StagedEncoder
from tconvseg.nn.instance_batch_norm import add_instance_batch_norm
from tconvseg.nn.walk import register_step_rule


def _resnet_layers(m: nn.Module) -> list[nn.Module]:
    return [m.conv1, m.bn1, m.relu, m.maxpool, m.layer1, m.layer2, m.layer3, m.layer4]


def _features(m: nn.Module) -> list[nn.Module]:
    return list(m.features.children())


_FEATURE_LAYERS: dict[str, Callable[[nn.Module], list[nn.Module]]] = {
    "resnet18": _resnet_layers,
    "resnet34": _resnet_layers,
    "resnet50": _resnet_layers,
    "resnet101": _resnet_layers,
    "vgg11_bn": _features,
    "vgg16_bn": _features,
    "vgg16": _features,
    "mobilenet_v3_large": _features,
    "mobilenet_v3_small": _features,
}

TORCHVISION_ENCODERS = tuple(_FEATURE_LAYERS)


_RESIDUAL_BLOCKS = (BasicBlock, Bottleneck, InvertedResidual)


def torchvision_encoder(
    name: str, *, weights: str | None = None, in_channels: int = 3, ibn_stages: int = 0
) -> StagedEncoder:
    """A `StagedEncoder` from a torchvision classification model.

    Args:
        name: one of `TORCHVISION_ENCODERS`.
        weights: ``None`` (random init, nothing downloaded), ``"DEFAULT"`` or a member name of
            the model's weights enum such as ``"IMAGENET1K_V1"``.
        in_channels: input channels; other than 3 replaces the first conv (same geometry, new
            random weights).
        ibn_stages: in the first ``ibn_stages`` stages, the first batch norm of each residual block
            normalises half of its channels per image (IBN-Net's IBN-a; see
            `tconvseg.nn.instance_batch_norm`). 0 leaves the backbone as torchvision builds it;
            IBN-Net's rule is every stage but the deepest. Needs residual blocks (not VGG).
    """
    if name not in _FEATURE_LAYERS:
        raise ValueError(f"unknown torchvision encoder {name!r}; expected one of {', '.join(TORCHVISION_ENCODERS)}")
    if weights is not None:
        available = [w.name for w in torchvision.models.get_model_weights(name)]
        if weights != "DEFAULT" and weights not in available:
            raise ValueError(
                f"unknown weights {weights!r} for {name}; expected None, 'DEFAULT' or one of {available}"
            )
    model = torchvision.models.get_model(name, weights=weights)
    layers = _FEATURE_LAYERS[name](model)
    if in_channels != 3:
        layers = _replace_first_conv(layers, in_channels)
    encoder = StagedEncoder.from_layers(layers, in_channels)
    if isinstance(ibn_stages, bool) or not isinstance(ibn_stages, int) or not 0 <= ibn_stages <= len(encoder.stages):
        raise ValueError(
            f"ibn_stages={ibn_stages!r} for {name}: expected an integer from 0 to its {len(encoder.stages)} stages"
        )
    if ibn_stages:
        try:
            add_instance_batch_norm(encoder.stages[:ibn_stages], _RESIDUAL_BLOCKS)
        except ValueError as err:
            raise ValueError(f"ibn_stages={ibn_stages} for {name}: {err}") from None
    return encoder


def _replace_first_conv(layers: list[nn.Module], in_channels: int) -> list[nn.Module]:
    if isinstance(layers[0], nn.Conv2d):
        return [_conv_like(layers[0], in_channels), *layers[1:]]
    for parent in layers[0].modules():
        for child_name, child in parent.named_children():
            if isinstance(child, nn.Conv2d):
                setattr(parent, child_name, _conv_like(child, in_channels))
                return layers
    raise ValueError(f"no Conv2d at the start of the encoder to adapt to in_channels={in_channels}")


def _conv_like(conv: nn.Conv2d, in_channels: int) -> nn.Conv2d:
    return nn.Conv2d(
        in_channels, conv.out_channels, conv.kernel_size, conv.stride, conv.padding,
        conv.dilation, 1, conv.bias is not None, conv.padding_mode,
    )


register_step_rule(BasicBlock, lambda m: (m.conv1, m.conv2))
register_step_rule(Bottleneck, lambda m: (m.conv1, m.conv2, m.conv3))
register_step_rule(InvertedResidual, lambda m: m.block)
register_step_rule(SqueezeExcitation, lambda m: None)  # a gate: scales channels, keeps the size
