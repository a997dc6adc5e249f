"""The U-Net decoder (Ronneberger et al.): every encoder stage fused by concatenation.

Upsampling is by matched transposed convolutions, so the skips line up at any input size without
cropping or padding.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

from torch import nn

from tconvseg.nn.decoders.skips import SkipDecoder
from tconvseg.nn.matched import Init
from tconvseg.nn.shapes import DownStep


class UNetDecoder(SkipDecoder):
    """All stages, coarse to fine, each concatenated with the upsampled features and refined.

    ``forward(features, size)`` → ``(N, out_channels, H, W)``.

    Args:
        encoder_channels: the encoder's ``out_channels``.
        encoder_steps: the encoder's ``steps``.
        out_channels: channels returned at the input size (the number of classes in `UNet`).
        decoder_channels: width of every decoder stage.
        refine: conv-norm-activation layers after each concatenation (at least 1: they bring the
            concatenated channels back to ``decoder_channels``).
        norm_layer: norm factory, ``None`` for none.
        activation_layer: activation factory, ``None`` for none.
        upsample_init: ``"bilinear"`` or ``"default"``.
        upsample_trainable: whether the upsampling kernels learn.
    """

    def __init__(
        self,
        encoder_channels: Sequence[int],
        encoder_steps: Sequence[DownStep],
        out_channels: int,
        *,
        decoder_channels: int = 64,
        refine: int = 1,
        norm_layer: Callable[..., nn.Module] | None = nn.BatchNorm2d,
        activation_layer: Callable[..., nn.Module] | None = nn.ReLU,
        upsample_init: Init = "bilinear",
        upsample_trainable: bool = True,
    ) -> None:
        super().__init__(
            encoder_channels, encoder_steps, out_channels,
            skip_stages=list(range(len(encoder_steps) - 2, -1, -1)),
            decoder_channels=decoder_channels, fusion="concat", refine=refine,
            norm_layer=norm_layer, activation_layer=activation_layer,
            upsample_init=upsample_init, upsample_trainable=upsample_trainable,
        )
