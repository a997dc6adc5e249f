"""Encoders: a `StagedEncoder` (stages with their channels and steps, read off the modules)
and builders for it. A new encoder family is one file here that returns a ``StagedEncoder`` and
registers the step rules of its blocks (see ``torchvision.py``)."""

from tconvseg.nn.encoders.efficientnet_lite import EFFICIENTNET_LITE_ENCODERS, efficientnet_lite_encoder
from tconvseg.nn.encoders.plain import plain_conv_encoder
from tconvseg.nn.encoders.staged import StagedEncoder
from tconvseg.nn.encoders.torchvision import TORCHVISION_ENCODERS, torchvision_encoder

__all__ = [
    "EFFICIENTNET_LITE_ENCODERS",
    "TORCHVISION_ENCODERS",
    "StagedEncoder",
    "efficientnet_lite_encoder",
    "plain_conv_encoder",
    "torchvision_encoder",
]
