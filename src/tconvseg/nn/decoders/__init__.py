"""Decoders: from the encoder's stage outputs back to the input size, by matched transposed convs only.

A decoder is an ``nn.Module`` built from the encoder's description, ``encoder.out_channels`` and
``encoder.steps`` (never typed by hand), with an ``out_channels`` attribute. Its
``forward(features, size)`` takes the encoder's stage outputs ``[f_0, ..., f_{S-1}]`` and the
input size ``(H, W)`` and returns ``(N, out_channels, H, W)``; every upsampling is a
`tconvseg.nn.MatchedConvTranspose2d` undoing known encoder steps. A new decoder is one
file here plus one config in ``configs/model/`` (built by `tconvseg.nn.encoder_decoder`).
"""

from tconvseg.nn.decoders.aux import AuxHeads
from tconvseg.nn.decoders.fcn import FCNDecoder
from tconvseg.nn.decoders.skips import SkipDecoder
from tconvseg.nn.decoders.unet import UNetDecoder

__all__ = ["AuxHeads", "FCNDecoder", "SkipDecoder", "UNetDecoder"]
