"""The skip decoder: walk the encoder in reverse, fusing chosen stages, back to the input size.

FCN (a few stages, sum) and U-Net (every stage, concat) are this decoder with different stages
and fusion; see ``fcn.py`` and ``unet.py``.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import torch
from torch import nn
from torchvision.ops.misc import Conv2dNormActivation

from tconvseg.nn.blocks import DecoderBlock, Fusion
from tconvseg.nn.matched import Init, MatchedConvTranspose2d
from tconvseg.nn.shapes import DownStep, step_between


class SkipDecoder(nn.Module):
    """Score the coarsest stage, undo the steps back to each skip stage and fuse it, restore the input size.

    ``forward(features, size)``: ``features`` are the encoder's stage outputs ``[f_0, ..., f_{S-1}]``,
    ``size`` the input's ``(H, W)``; returns ``(N, out_channels, H, W)``. ``score`` maps ``f_{S-1}``
    to the decoder width; a `DecoderBlock` per skip stage undoes the steps from the previous
    stage and fuses the skip; ``project`` maps to ``out_channels``; ``final_up`` undoes the steps
    from the last fused stage back to the input.

    Args:
        encoder_channels: the encoder's ``out_channels``, one per stage.
        encoder_steps: the encoder's ``steps``, one per stage.
        out_channels: channels returned at the input size. The last upsampling runs at full
            resolution, the costliest place, at this width: builders pass the number of classes.
        skip_stages: encoder stages fused on the way up, coarse to fine (indices ``< S - 1``).
        decoder_channels: decoder width; ``None`` decodes at ``out_channels`` width with a plain
            1x1 score conv and no projection (the FCN paper's class space).
        fusion: ``"sum"`` (FCN) or ``"concat"`` (U-Net).
        refine: conv-norm-activation layers after each fusion.
        norm_layer: norm factory for decoder layers, ``None`` for none.
        activation_layer: activation factory for decoder layers, ``None`` for none.
        upsample_init: ``"bilinear"`` or ``"default"`` (see `MatchedConvTranspose2d`).
        upsample_trainable: whether the upsampling kernels learn.
    """

    def __init__(
        self,
        encoder_channels: Sequence[int],
        encoder_steps: Sequence[DownStep],
        out_channels: int,
        *,
        skip_stages: Sequence[int],
        decoder_channels: int | None = None,
        fusion: Fusion = "sum",
        refine: int = 0,
        norm_layer: Callable[..., nn.Module] | None = nn.BatchNorm2d,
        activation_layer: Callable[..., nn.Module] | None = nn.ReLU,
        upsample_init: Init = "bilinear",
        upsample_trainable: bool = True,
    ) -> None:
        super().__init__()
        coarsest = len(encoder_steps) - 1
        if len(encoder_channels) != len(encoder_steps):
            raise ValueError(f"got {len(encoder_channels)} encoder channels for {len(encoder_steps)} steps")
        previous = coarsest
        for stage in skip_stages:
            if not 0 <= stage < previous:
                raise ValueError(
                    f"skip_stages must run coarse to fine below the coarsest stage {coarsest}, got {list(skip_stages)}"
                )
            previous = stage
        self.skip_stages = list(skip_stages)
        self.out_channels = out_channels
        width = out_channels if decoder_channels is None else decoder_channels
        if decoder_channels is None:
            self.score: nn.Module = nn.Conv2d(encoder_channels[coarsest], width, 1)
        else:
            self.score = Conv2dNormActivation(
                encoder_channels[coarsest], width, 1,
                norm_layer=norm_layer, activation_layer=activation_layer, inplace=None,
            )
        blocks, previous = [], coarsest
        for stage in self.skip_stages:
            step = step_between(encoder_steps, stage, previous)
            blocks.append(
                DecoderBlock(
                    width, encoder_channels[stage], width, step,
                    fusion=fusion, refine=refine, norm_layer=norm_layer, activation_layer=activation_layer,
                    upsample_init=upsample_init, upsample_trainable=upsample_trainable,
                )
            )
            previous = stage
        self.blocks = nn.ModuleList(blocks)
        self.project = nn.Identity() if decoder_channels is None else nn.Conv2d(width, out_channels, 1)
        self.final_up = MatchedConvTranspose2d(
            out_channels, out_channels, step_between(encoder_steps, -1, previous),
            init=upsample_init, trainable=upsample_trainable,
        )

    def forward(self, features: Sequence[torch.Tensor], size: tuple[int, int]) -> torch.Tensor:
        """``features`` ``[(N, C_i, h_i, w_i)]``, ``size`` ``(H, W)`` → ``(N, out_channels, H, W)``."""
        y = self.score(features[-1])  # (N, width, H/32, W/32) for a stride-32 encoder
        for block, stage in zip(self.blocks, self.skip_stages):
            y = block(y, features[stage])  # (N, width, h_stage, w_stage)
        return self.final_up(self.project(y), size)
