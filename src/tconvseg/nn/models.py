"""Encoder → decoder → head: the one segmentation model, and the builders that assemble it.

**The model contract**, in one place: input ``(N, C, H, W)`` float, ``C = encoder.in_channels``,
``H >= min_input_size[0]`` and ``W >= min_input_size[1]``, where ``min_input_size`` is the
encoder's: the smallest size every stage turns into at least one pixel (1x1 for the ResNets and
MobileNets, 32x32 for VGG). Output: logits ``(N, K, H, W)``. Any H and W above the minimum work
(odd, prime, not a multiple of 32) because every upsampling undoes known encoder steps and picks
its ``output_padding`` for the size it must reach. Smaller or misshapen inputs get a ``ValueError``
that says so. (Batch norm in training mode still needs more than one value per channel.)
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import torch
from torch import nn

from tconvseg.nn.blocks import Fusion
from tconvseg.nn.decoders import AuxHeads, FCNDecoder, UNetDecoder
from tconvseg.nn.decoders.fcn import Topology
from tconvseg.nn.encoders import StagedEncoder, torchvision_encoder
from tconvseg.nn.matched import Init
from tconvseg.nn.shapes import DownStep

#: Builds a decoder from ``(encoder.out_channels, encoder.steps)``: a class from ``nn/decoders``
#: or a ``functools.partial`` of one (``_partial_: true`` in a config).
DecoderFactory = Callable[[list[int], list[DownStep]], nn.Module]


class EncoderDecoder(nn.Module):
    """``logits = head(decoder(encoder(x), (H, W)))``, with the contract of this module's docstring.

    Args:
        encoder: a `StagedEncoder`; ``encoder(x)`` is the list of stage outputs.
        decoder: ``decoder(features, (H, W))`` → ``(N, C_dec, H, W)`` (see ``tconvseg.nn.decoders``).
        head: ``(N, C_dec, H, W)`` → ``(N, K, H, W)``, e.g. a 1x1 conv, or ``nn.Identity()`` when the
            decoder already returns class scores.
        aux_heads: optional `AuxHeads`, run only by `forward_with_aux`.
    """

    def __init__(
        self, encoder: StagedEncoder, decoder: nn.Module, head: nn.Module, aux_heads: AuxHeads | None = None
    ) -> None:
        super().__init__()
        self.encoder = encoder
        self.decoder = decoder
        self.head = head
        self.aux_heads = aux_heads

    @property
    def min_input_size(self) -> tuple[int, int]:
        """Smallest ``(H, W)`` the model accepts: the encoder's."""
        return self.encoder.min_input_size

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``x (N, C, H, W)`` → logits ``(N, K, H, W)``, in training and in eval; aux heads never run."""
        features, size = self._encode(x)
        return self._decode(features, size)

    def forward_with_aux(self, x: torch.Tensor) -> tuple[torch.Tensor, list[torch.Tensor]]:
        """``x (N, C, H, W)`` → ``(logits, aux)``: the main logits ``(N, K, H, W)`` and one
        ``(N, K, H, W)`` per aux head, in ``aux_stages`` order; ``aux`` is empty without aux heads.
        The training system calls this in training and weights the aux losses."""
        features, size = self._encode(x)
        aux = [] if self.aux_heads is None else self.aux_heads(features, size)
        return self._decode(features, size), aux

    def _encode(self, x: torch.Tensor) -> tuple[list[torch.Tensor], tuple[int, int]]:
        name, c = type(self).__name__, self.encoder.in_channels
        if x.dim() != 4 or x.shape[1] != c:
            raise ValueError(f"{name} expects input (N, {c}, H, W), got shape {tuple(x.shape)}")
        h, w = x.shape[-2], x.shape[-1]  # not int(): exported graphs keep H and W symbolic
        (min_h, min_w) = self.min_input_size
        if h < min_h or w < min_w:
            raise ValueError(
                f"input size {h}x{w} is below this encoder's minimum {min_h}x{min_w} "
                "(the smallest size every stage maps to at least one pixel)"
            )
        return self.encoder(x), (h, w)

    def _decode(self, features: list[torch.Tensor], size: tuple[int, int]) -> torch.Tensor:
        y = self.decoder(features, size)
        if tuple(y.shape[-2:]) != size:
            # A new decoder's mistake, caught here rather than as a puzzling loss error.
            raise RuntimeError(
                f"{type(self.decoder).__name__} returned size {tuple(y.shape[-2:])} for input size {size}: "
                "a decoder must restore the input size"
            )
        return self.head(y)


def _as_encoder(encoder: StagedEncoder | str) -> StagedEncoder:
    return torchvision_encoder(encoder) if isinstance(encoder, str) else encoder


def _aux_heads(
    encoder: StagedEncoder, stages: Sequence[int], num_classes: int, init: Init, trainable: bool
) -> AuxHeads | None:
    if not stages:
        return None
    return AuxHeads(
        encoder.out_channels, encoder.steps, stages, num_classes, upsample_init=init, upsample_trainable=trainable
    )


def encoder_decoder(
    encoder: StagedEncoder | str,
    num_classes: int,
    *,
    decoder: DecoderFactory,
    aux_stages: Sequence[int] = (),
    upsample_init: Init = "bilinear",
    upsample_trainable: bool = True,
) -> EncoderDecoder:
    """An `EncoderDecoder` with any decoder: ``decoder(encoder.out_channels, encoder.steps)``
    builds it, a 1x1 conv maps its ``out_channels`` to ``num_classes``.

    Args:
        encoder: a `StagedEncoder`, or the name of a torchvision encoder.
        num_classes: ``K``.
        decoder: a decoder class or partial (see ``tconvseg.nn.decoders``).
        aux_stages: encoder stages with an auxiliary score head (negative count from the end).
        upsample_init: initialization of the aux heads' upsampling.
        upsample_trainable: whether the aux heads' upsampling learns.
    """
    encoder = _as_encoder(encoder)
    built = decoder(list(encoder.out_channels), list(encoder.steps))
    head = nn.Conv2d(built.out_channels, num_classes, 1)
    aux = _aux_heads(encoder, aux_stages, num_classes, upsample_init, upsample_trainable)
    return EncoderDecoder(encoder, built, head, aux)


class FCN(EncoderDecoder):
    """Fully convolutional network (Long et al.): `FCNDecoder` on a staged encoder.

    The decoder returns class scores (its last, full-resolution upsampling runs on the ``K`` score
    maps, as in the paper), so the head is the identity.

    Args:
        encoder: a `StagedEncoder`, or the name of a torchvision encoder.
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
        aux_stages: encoder stages with an auxiliary score head for training (e.g. ``[-2]``).
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
        aux_stages: Sequence[int] = (),
    ) -> None:
        encoder = _as_encoder(encoder)
        decoder = FCNDecoder(
            encoder.out_channels, encoder.steps, num_classes, topology=topology,
            decoder_channels=decoder_channels, fusion=fusion, refine=refine,
            norm_layer=norm_layer, activation_layer=activation_layer,
            upsample_init=upsample_init, upsample_trainable=upsample_trainable,
        )
        aux = _aux_heads(encoder, aux_stages, num_classes, upsample_init, upsample_trainable)
        super().__init__(encoder, decoder, nn.Identity(), aux)
        self.register_load_state_dict_pre_hook(_accept_flat_fcn_keys)


class UNet(EncoderDecoder):
    """U-Net (Ronneberger et al.): `UNetDecoder` (every stage, concatenated) on a staged encoder.

    Like `FCN`, the decoder returns class scores and the head is the identity.

    Args:
        encoder: a `StagedEncoder`, or the name of a torchvision encoder.
        num_classes: number of output classes ``K``.
        decoder_channels: width of every decoder stage.
        refine: conv-norm-activation layers after each concatenation (``>= 1``).
        norm_layer: norm factory for decoder layers, ``None`` for none.
        activation_layer: activation factory for decoder layers, ``None`` for none.
        upsample_init: ``"bilinear"`` or ``"default"``.
        upsample_trainable: whether the upsampling kernels learn.
        aux_stages: encoder stages with an auxiliary score head for training (e.g. ``[-2]``).
    """

    def __init__(
        self,
        encoder: StagedEncoder | str,
        num_classes: int,
        *,
        decoder_channels: int = 64,
        refine: int = 1,
        norm_layer: Callable[..., nn.Module] | None = nn.BatchNorm2d,
        activation_layer: Callable[..., nn.Module] | None = nn.ReLU,
        upsample_init: Init = "bilinear",
        upsample_trainable: bool = True,
        aux_stages: Sequence[int] = (),
    ) -> None:
        encoder = _as_encoder(encoder)
        decoder = UNetDecoder(
            encoder.out_channels, encoder.steps, num_classes,
            decoder_channels=decoder_channels, refine=refine,
            norm_layer=norm_layer, activation_layer=activation_layer,
            upsample_init=upsample_init, upsample_trainable=upsample_trainable,
        )
        aux = _aux_heads(encoder, aux_stages, num_classes, upsample_init, upsample_trainable)
        super().__init__(encoder, decoder, nn.Identity(), aux)
        # Before UNet existed, the U-Net option built an FCN with topology "full" and concat fusion.
        self.register_load_state_dict_pre_hook(_accept_flat_fcn_keys)


# Before the decoder was its own part, FCN kept its decoder layers at the top level.
_FLAT_FCN_KEYS = {"score.": "decoder.score.", "blocks.": "decoder.blocks.", "head.": "decoder.project.",
                  "final_up.": "decoder.final_up."}


def _accept_flat_fcn_keys(module: nn.Module, state_dict: dict[str, Any], prefix: str, *_: Any) -> None:
    # Checkpoints written by that FCN keep loading: their keys are renamed to the decoder's.
    for old, new in _FLAT_FCN_KEYS.items():
        for key in [k for k in state_dict if k.startswith(prefix + old)]:
            state_dict[prefix + new + key[len(prefix + old) :]] = state_dict.pop(key)
