"""A small conv encoder whose every stage (channels, kernel, stride, padding, dilation, depth) is set
from a config: the decoder follows whatever steps it is given."""

from __future__ import annotations

from collections.abc import Callable, Sequence

from torch import nn
from torchvision.ops.misc import Conv2dNormActivation

from tconvseg.nn.encoders.staged import StagedEncoder
from tconvseg.nn.shapes import as_pair


def plain_conv_encoder(
    stages: Sequence[dict],
    in_channels: int = 3,
    norm_layer: Callable[..., nn.Module] | None = nn.BatchNorm2d,
    activation_layer: Callable[..., nn.Module] | None = nn.ReLU,
) -> StagedEncoder:
    """A small configurable conv encoder: one stage per entry of ``stages``.

    Each entry is a mapping with ``channels`` (required) and optional ``kernel`` (3),
    ``stride`` (2), ``padding`` (``dilation*(kernel-1)//2``), ``dilation`` (1) and ``depth``
    (1: extra 3x3 same-size conv layers after the first). Kernels, strides, paddings and
    dilations may be ints or ``[h, w]`` pairs.
    """
    built: list[nn.Module] = []
    channels = in_channels
    known = {"channels", "kernel", "stride", "padding", "dilation", "depth"}
    for i, spec in enumerate(stages):
        unknown = set(spec) - known
        if unknown or "channels" not in spec:
            raise ValueError(
                f"plain encoder stage {i}: expected keys {sorted(known)} with 'channels' required, "
                f"got {dict(spec)}"
            )
        name = f"plain encoder stage {i} "
        kernel = as_pair(spec.get("kernel", 3), name + "kernel")
        stride = as_pair(spec.get("stride", 2), name + "stride")
        dilation = as_pair(spec.get("dilation", 1), name + "dilation")
        padding = spec.get("padding")
        # Default padding keeps the size up to the stride ("same" for stride 1).
        padding = tuple(d * (k - 1) // 2 for k, d in zip(kernel, dilation)) if padding is None else padding
        layers = [
            Conv2dNormActivation(
                channels, spec["channels"], kernel_size=kernel, stride=stride,
                padding=as_pair(padding, name + "padding"), dilation=dilation,
                norm_layer=norm_layer, activation_layer=activation_layer, inplace=None,
            )
        ]
        for _ in range(int(spec.get("depth", 1)) - 1):
            layers.append(
                Conv2dNormActivation(
                    spec["channels"], spec["channels"], kernel_size=3,
                    norm_layer=norm_layer, activation_layer=activation_layer, inplace=None,
                )
            )
        built.append(nn.Sequential(*layers))
        channels = spec["channels"]
    return StagedEncoder(built, in_channels)

