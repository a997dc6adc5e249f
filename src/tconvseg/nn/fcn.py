"""FCN: encoder → decoder of matched transposed convolutions → logits at the input size.

The model contract, in one place: input ``(N, C, H, W)`` with ``H >= min_input_size[0]`` and
``W >= min_input_size[1]`` (the smallest size every encoder stage turns into at least one pixel:
1x1 for the ResNets and MobileNets, 32x32 for VGG), logits ``(N, num_classes, H, W)``.
Any H and W above the minimum work — odd, prime, not a multiple of 32 — because every upsampling
undoes a known encoder step and picks its ``output_padding`` for the size it must reach.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Literal

import torch
from torch import nn
from torchvision.ops.misc import Conv2dNormActivation

from tconvseg.nn.blocks import DecoderBlock, Fusion
from tconvseg.nn.encoders import StagedEncoder, torchvision_encoder
from tconvseg.nn.matched import Init, MatchedConvTranspose2d

Topology = Literal["32s", "16s", "8s", "full"]

#: How many stages below the coarsest one feed a skip connection (the paper's topologies assume
#: a stride-32 encoder; "full" uses every stage, U-Net style).
SKIPS_PER_TOPOLOGY: dict[str, int | None] = {"32s": 0, "16s": 1, "8s": 2, "full": None}


class FCN(nn.Module):
    """Fully convolutional network whose decoder restores resolution with matched transposed convs.

    ``score`` maps the coarsest feature to ``decoder_channels``; each :class:`DecoderBlock` undoes
    the steps back to the next skip stage and fuses it; ``head`` maps to class scores; ``final_up``
    undoes the remaining steps to the input size.

    Args:
        encoder: a :class:`StagedEncoder`, or the name of a torchvision encoder.
        num_classes: number of output classes ``K``.
        topology: ``"32s"``, ``"16s"``, ``"8s"`` (FCN paper) or ``"full"`` (every stage).
        decoder_channels: decoder width; ``None`` decodes in class space as the paper does
            (every upsampling is ``K → K``).
        fusion: ``"sum"`` (FCN) or ``"concat"`` (U-Net).
        refine: conv-norm-activation layers after each fusion (0 in the paper).
        norm_layer: norm factory for decoder layers, ``None`` for none.
        activation_layer: activation factory for decoder layers, ``None`` for none.
        upsample_init: ``"bilinear"`` (FCN) or ``"default"``.
        upsample_trainable: whether the upsampling kernels learn.
    """

    def __init__(
        self,
        encoder: StagedEncoder | str,
        num_classes: int,
        *,
        topology: Topology = "8s",
        decoder_channels: int | None = None,
        fusion: Fusion = "sum",
        refine: int = 0,
        norm_layer: Callable[..., nn.Module] | None = nn.BatchNorm2d,
        activation_layer: Callable[..., nn.Module] | None = nn.ReLU,
        upsample_init: Init = "bilinear",
        upsample_trainable: bool = True,
    ) -> None:
        super().__init__()
        self.encoder = torchvision_encoder(encoder) if isinstance(encoder, str) else encoder
        if topology not in SKIPS_PER_TOPOLOGY:
            raise ValueError(f"topology must be one of {list(SKIPS_PER_TOPOLOGY)}, got {topology!r}")
        coarsest = len(self.encoder.steps) - 1
        n_skips = SKIPS_PER_TOPOLOGY[topology]
        n_skips = coarsest if n_skips is None else n_skips
        if n_skips > coarsest:
            raise ValueError(
                f"topology {topology!r} needs {n_skips + 1} encoder stages, the encoder has {coarsest + 1}"
            )
        self.skip_stages = list(range(coarsest - 1, coarsest - 1 - n_skips, -1))
        self.num_classes = num_classes
        width = num_classes if decoder_channels is None else decoder_channels
        channels = self.encoder.out_channels
        if decoder_channels is None:
            self.score: nn.Module = nn.Conv2d(channels[coarsest], width, 1)
        else:
            self.score = Conv2dNormActivation(
                channels[coarsest], width, 1, norm_layer=norm_layer, activation_layer=activation_layer, inplace=None
            )
        blocks, previous = [], coarsest
        for stage in self.skip_stages:
            blocks.append(
                DecoderBlock(
                    width, channels[stage], width, self.encoder.step_between(stage, previous),
                    fusion=fusion, refine=refine, norm_layer=norm_layer, activation_layer=activation_layer,
                    upsample_init=upsample_init, upsample_trainable=upsample_trainable,
                )
            )
            previous = stage
        self.blocks = nn.ModuleList(blocks)
        self.head = nn.Identity() if width == num_classes and decoder_channels is None else nn.Conv2d(width, num_classes, 1)
        self.final_up = MatchedConvTranspose2d(
            num_classes, num_classes, self.encoder.step_between(-1, previous),
            init=upsample_init, trainable=upsample_trainable,
        )

    @property
    def min_input_size(self) -> tuple[int, int]:
        return self.encoder.min_input_size

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``x (N, C, H, W)`` → logits ``(N, num_classes, H, W)``."""
        if x.dim() != 4 or x.shape[1] != self.encoder.in_channels:
            raise ValueError(
                f"FCN expects input (N, {self.encoder.in_channels}, H, W), got shape {tuple(x.shape)}"
            )
        h, w = int(x.shape[-2]), int(x.shape[-1])
        if h < self.min_input_size[0] or w < self.min_input_size[1]:
            raise ValueError(
                f"input size {h}x{w} is below this encoder's minimum {self.min_input_size[0]}x"
                f"{self.min_input_size[1]} (the smallest size every stage maps to at least one pixel)"
            )
        features = self.encoder(x)
        y = self.score(features[-1])  # (N, width, H/32, W/32) for a stride-32 encoder
        for block, stage in zip(self.blocks, self.skip_stages):
            y = block(y, features[stage])
        return self.final_up(self.head(y), (h, w))
