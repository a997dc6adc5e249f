"""Pure-PyTorch layer of tconvseg: shape arithmetic, matched transposed convolutions, encoders, FCN models.

Imports only torch and torchvision (a test checks that Lightning, Hydra and torchmetrics stay out).
"""

from tconvseg.nn.shapes import (
    DownStep,
    compose,
    conv_out_size,
    effective_kernel,
    output_padding_for,
    tconv_out_size,
)
from tconvseg.nn.walk import register_step_rule, step_of

__all__ = [
    "DownStep",
    "compose",
    "conv_out_size",
    "effective_kernel",
    "output_padding_for",
    "register_step_rule",
    "step_of",
    "tconv_out_size",
]
