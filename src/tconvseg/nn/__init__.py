"""Pure-PyTorch layer of tconvseg: shape arithmetic, matched transposed convolutions, encoders, FCN models.

Imports only torch and torchvision (a test checks that Lightning, Hydra and torchmetrics stay out).
"""

from tconvseg.nn.bilinear import bilinear_kernel_1d, bilinear_kernel_2d, fill_bilinear_
from tconvseg.nn.blocks import DecoderBlock
from tconvseg.nn.encoders import TORCHVISION_ENCODERS, StagedEncoder, plain_conv_encoder, torchvision_encoder
from tconvseg.nn.fcn import FCN
from tconvseg.nn.matched import MatchedConvTranspose2d
from tconvseg.nn.shapes import (
    DownStep,
    compose,
    conv_out_size,
    effective_kernel,
    output_padding_for,
    tconv_out_size,
)
from tconvseg.nn.walk import atomic_steps, register_step_rule, step_of

__all__ = [
    "DecoderBlock",
    "DownStep",
    "FCN",
    "MatchedConvTranspose2d",
    "StagedEncoder",
    "TORCHVISION_ENCODERS",
    "atomic_steps",
    "bilinear_kernel_1d",
    "bilinear_kernel_2d",
    "compose",
    "conv_out_size",
    "effective_kernel",
    "fill_bilinear_",
    "output_padding_for",
    "plain_conv_encoder",
    "register_step_rule",
    "step_of",
    "tconv_out_size",
    "torchvision_encoder",
]
