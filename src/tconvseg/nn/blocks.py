"""Decoder building blocks: matched upsampling, skip fusion, conv-norm-activation (`DecoderBlock`)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Literal

import torch
from torch import nn
from torchvision.ops.misc import Conv2dNormActivation

from tconvseg.nn.matched import Init, MatchedConvTranspose2d
from tconvseg.nn.shapes import DownStep

Fusion = Literal["sum", "concat"]


class DecoderBlock(nn.Module):
    """Undo one encoder step and fuse the skip feature that step consumed.

    ``x (N, C_in, h, w)`` is upsampled by a `MatchedConvTranspose2d` to the skip's size
    ``(H, W)``, then fused with ``skip (N, C_skip, H, W)``:

    * ``"sum"`` (FCN): the skip is projected by a 1x1 conv to ``out_channels`` and added;
    * ``"concat"`` (U-Net): upsampled features (``out_channels``) and skip are concatenated.

    Then ``refine`` conv-norm-activation layers (3x3) mix the result. Output:
    ``(N, out_channels, H, W)``. With ``fusion="sum"`` and ``refine=0`` this is exactly FCN's
    skip step (upsample the coarse score, add the finer score).

    Args:
        in_channels: channels of ``x``.
        skip_channels: channels of ``skip``.
        out_channels: channels of the output.
        step: the encoder step between ``skip`` and ``x`` (a `DownStep` or a module).
        fusion: ``"sum"`` or ``"concat"``.
        refine: number of 3x3 conv-norm-activation layers after the fusion (``>= 1`` for concat).
        norm_layer: factory for the norm layer, ``None`` for none.
        activation_layer: factory for the activation, ``None`` for none.
        upsample_init: ``"bilinear"`` or ``"default"`` (see `MatchedConvTranspose2d`).
        upsample_trainable: whether the upsampling weights learn.
    """

    def __init__(
        self,
        in_channels: int,
        skip_channels: int,
        out_channels: int,
        step: DownStep | nn.Module,
        *,
        fusion: Fusion = "sum",
        refine: int = 1,
        norm_layer: Callable[..., nn.Module] | None = nn.BatchNorm2d,
        activation_layer: Callable[..., nn.Module] | None = nn.ReLU,
        upsample_init: Init = "bilinear",
        upsample_trainable: bool = True,
    ) -> None:
        super().__init__()
        if fusion not in ("sum", "concat"):
            raise ValueError(f"fusion must be 'sum' or 'concat', got {fusion!r}")
        if fusion == "concat" and refine < 1:
            raise ValueError("fusion='concat' needs refine >= 1 to bring the channels back to out_channels")
        # Bilinear upsampling keeps channels, so a 1x1 projection changes them first.
        needs_projection = upsample_init == "bilinear" and in_channels != out_channels
        self.project: nn.Module = nn.Conv2d(in_channels, out_channels, 1) if needs_projection else nn.Identity()
        self.up = MatchedConvTranspose2d(
            out_channels if needs_projection else in_channels,
            out_channels,
            step,
            init=upsample_init,
            trainable=upsample_trainable,
        )
        self.fusion = fusion
        self.skip = nn.Conv2d(skip_channels, out_channels, 1) if fusion == "sum" else nn.Identity()
        fused = out_channels if fusion == "sum" else out_channels + skip_channels
        layers: list[nn.Module] = []
        for i in range(refine):
            layers.append(
                Conv2dNormActivation(
                    fused if i == 0 else out_channels,
                    out_channels,
                    kernel_size=3,
                    norm_layer=norm_layer,
                    activation_layer=activation_layer, inplace=None,
                )
            )
        self.refine = nn.Sequential(*layers)
        self.out_channels = out_channels

    def forward(self, x: torch.Tensor, skip: torch.Tensor) -> torch.Tensor:
        """``x (N, C_in, h, w)``, ``skip (N, C_skip, H, W)`` → ``(N, out_channels, H, W)``."""
        x = self.up(self.project(x), skip.shape[-2:])
        if self.fusion == "sum":
            x = x + self.skip(skip)
        else:
            x = torch.cat([x, skip], dim=1)
        return self.refine(x)
