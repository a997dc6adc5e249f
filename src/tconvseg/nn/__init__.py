"""Pure-PyTorch layer of tconvseg: shape arithmetic, matched transposed convolutions, encoders,
decoders and the encoder → decoder → head model.

Imports only torch and torchvision (a test checks that Lightning, Hydra and torchmetrics stay out).
"""

from tconvseg.nn.batch_norm import FrozenStatisticsBatchNorm2d, freeze_batch_norm_statistics, recompute_batch_norm
from tconvseg.nn.bilinear import bilinear_kernel_1d, bilinear_kernel_2d, fill_bilinear_
from tconvseg.nn.blocks import DecoderBlock
from tconvseg.nn.decoders import AuxHeads, FCNDecoder, SkipDecoder, UNetDecoder
from tconvseg.nn.encoders import (
    EFFICIENTNET_LITE_ENCODERS,
    TORCHVISION_ENCODERS,
    StagedEncoder,
    efficientnet_lite_encoder,
    plain_conv_encoder,
    torchvision_encoder,
)
from tconvseg.nn.instance_batch_norm import InstanceBatchNorm2d, add_instance_batch_norm
from tconvseg.nn.matched import MatchedConvTranspose2d
from tconvseg.nn.models import FCN, EncoderDecoder, UNet, encoder_decoder
from tconvseg.nn.same_conv import Conv2dSame
from tconvseg.nn.shapes import (
    DownStep,
    as_pair,
    compose,
    conv_out_size,
    effective_kernel,
    min_input_size,
    output_padding_for,
    step_between,
    tconv_out_size,
)
from tconvseg.nn.walk import atomic_steps, register_step_rule, step_of

__all__ = [
    "EFFICIENTNET_LITE_ENCODERS",
    "AuxHeads",
    "Conv2dSame",
    "DecoderBlock",
    "DownStep",
    "EncoderDecoder",
    "FCN",
    "FCNDecoder",
    "FrozenStatisticsBatchNorm2d",
    "InstanceBatchNorm2d",
    "MatchedConvTranspose2d",
    "SkipDecoder",
    "StagedEncoder",
    "TORCHVISION_ENCODERS",
    "UNet",
    "UNetDecoder",
    "add_instance_batch_norm",
    "as_pair",
    "atomic_steps",
    "bilinear_kernel_1d",
    "bilinear_kernel_2d",
    "compose",
    "conv_out_size",
    "effective_kernel",
    "efficientnet_lite_encoder",
    "encoder_decoder",
    "fill_bilinear_",
    "freeze_batch_norm_statistics",
    "min_input_size",
    "output_padding_for",
    "plain_conv_encoder",
    "recompute_batch_norm",
    "register_step_rule",
    "step_between",
    "step_of",
    "tconv_out_size",
    "torchvision_encoder",
]
