"""Peers in the same harness (same system, data, recipe, budget): networks that upsample by interpolation.

They live outside `tconvseg.nn` because they restore resolution with ``F.interpolate``, which
the project's own networks never do. Two kinds:

- torchvision's segmentation models (`torchvision_peer`), random init only: no weights are downloaded;
- interpolating decoders on the project's own encoders (`bilinear_fcn`, `lraspp`): the same encoder,
  pretrained weights included, as a matched FCN-8s or U-Net, so a table compares decoders and nothing else.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn
from torchvision.models import segmentation
from torchvision.models.segmentation.lraspp import LRASPPHead

from tconvseg.nn import FCN, AuxHeads, MatchedConvTranspose2d, StagedEncoder, UNet

#: The torchvision builders a peer may name, and whether each takes ``aux_loss``.
PEERS: dict[str, bool] = {
    "lraspp_mobilenet_v3_large": False,
    "deeplabv3_mobilenet_v3_large": True,
    "fcn_resnet50": True,
}


class TorchvisionPeer(nn.Module):
    """A torchvision segmentation model with the project's contract: ``(N, 3, H, W)`` → logits ``(N, K, H, W)``.

    torchvision returns ``{"out": logits}``; this returns the logits. Its auxiliary classifier is
    off (``aux_loss=False``): peers train on the main output only.
    """

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.model = model

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.model(x)["out"]


def torchvision_peer(name: str, num_classes: int, *, encoder: Any = None, aux_stages: Sequence[int] = ()) -> TorchvisionPeer:
    """``torchvision.models.segmentation.<name>`` with random weights (backbone included), wrapped.

    Args:
        name: one of `PEERS`.
        num_classes: ``K``.
        encoder: the shared model config's key; a peer brings its own backbone, so it must stay ``null``.
        aux_stages: the shared model config's key; a torchvision peer has no aux heads here, so it must stay ``[]``.
    """
    if name not in PEERS:
        raise ValueError(f"model.net.name={name!r} is not a known torchvision peer; expected one of {sorted(PEERS)}")
    if encoder is not None or list(aux_stages):
        raise ValueError(
            f"model.net.encoder={encoder!r} and model.net.aux_stages={list(aux_stages)} are set for the torchvision peer "
            f"{name!r}; expected null and [] (a peer brings its own backbone and trains without aux heads): add "
            "model.net.aux_stages=[] to a recipe that uses aux heads."
        )
    kwargs = {"aux_loss": False} if PEERS[name] else {}
    model = getattr(segmentation, name)(weights=None, weights_backbone=None, num_classes=num_classes, **kwargs)
    return TorchvisionPeer(model)


class InterpolateUp(nn.Module):
    """Bilinear resize in place of a matched transposed convolution: same call, no weights.

    ``forward(x (N, C, h, w), output_size (H, W))`` → ``(N, C, H, W)`` (``align_corners=False``, as
    torchvision's segmentation models resize).
    """

    def forward(self, x: torch.Tensor, output_size: Sequence[int]) -> torch.Tensor:
        return F.interpolate(x, size=(output_size[0], output_size[1]), mode="bilinear", align_corners=False)


def bilinear_fcn(encoder: StagedEncoder | str, num_classes: int, **options: Any) -> FCN:
    """`tconvseg.nn.FCN` with every matched transposed convolution replaced by `InterpolateUp`.

    The same encoder, skips, fusions, refinement convs and widths as ``FCN(encoder, num_classes,
    **options)``; only the upsampling differs (bilinear interpolation, no weights), so a run against
    the matched FCN measures the upsampling alone. ``(N, 3, H, W)`` → logits ``(N, K, H, W)`` for any
    ``H, W`` the encoder accepts (interpolation reaches any size).

    Args:
        encoder: a `StagedEncoder` or a torchvision encoder name, as for `FCN`.
        num_classes: ``K``.
        **options: `FCN`'s keyword options; ``upsample_init`` must be ``"bilinear"`` (its default:
            the decoder then projects channels before upsampling, which interpolation needs) and
            ``upsample_trainable`` is ignored (there is nothing to train).
    """
    return _interpolating(FCN(encoder, num_classes, **_bilinear_options(options, "FCN")))


def bilinear_unet(encoder: StagedEncoder | str, num_classes: int, **options: Any) -> UNet:
    """`tconvseg.nn.UNet` with every matched transposed convolution replaced by `InterpolateUp`.

    The U-Net of the same options (every stage fused by concatenation, the same refinement convs and widths) that
    upsamples bilinearly: against the matched U-Net it measures the upsampling alone. ``(N, 3, H, W)`` → logits
    ``(N, K, H, W)``. ``upsample_init`` must be ``"bilinear"`` and ``upsample_trainable`` is ignored, as for `bilinear_fcn`.
    """
    return _interpolating(UNet(encoder, num_classes, **_bilinear_options(options, "U-Net")))


def _bilinear_options(options: dict[str, Any], what: str) -> dict[str, Any]:
    # Interpolation keeps channels: only the bilinear init makes the decoder project them first; nothing is trainable.
    if options.get("upsample_init", "bilinear") != "bilinear":
        raise ValueError(
            f"model.net.upsample_init={options['upsample_init']!r} for the bilinear {what} peer; expected 'bilinear' "
            "(interpolation keeps channels, so the decoder must project them before each upsampling)"
        )
    return {k: v for k, v in options.items() if k != "upsample_trainable"}


def _interpolating(model: nn.Module) -> nn.Module:
    # Swap in place so that everything else (skips, widths, aux heads, state-dict keys) stays the matched model's.
    for name, module in list(model.named_modules()):
        if isinstance(module, MatchedConvTranspose2d):
            parent, _, attribute = name.rpartition(".")
            model.get_submodule(parent).register_module(attribute, InterpolateUp())
    return model


class LRASPPOnEncoder(nn.Module):
    """torchvision's LR-ASPP head (Howard et al., MobileNetV3) on a staged encoder.

    ``forward(x (N, 3, H, W))`` → logits ``(N, K, H, W)``: the head fuses a fine stage (``low``) with
    the coarsest (``high``, squeezed and excited by a global pool), scores at the fine stage's size,
    and resizes to the input bilinearly, as torchvision's ``LRASPP`` does.

    Args:
        encoder: a `StagedEncoder`.
        num_classes: ``K``.
        low_stage: the fine stage (negative counts from the end; ``-3`` is stride 8 on a five-stage,
            stride-32 encoder, FCN-8s's finest skip).
        inter_channels: the head's width (torchvision's default 128).
        aux_stages: encoder stages with an auxiliary score head in training (a 1x1 conv resized
            bilinearly; `forward_with_aux`), as the matched models' ``aux_stages``.

    Attributes:
        encoder: the encoder (parameter groups and the input-normalisation check read it).
    """

    def __init__(
        self, encoder: StagedEncoder, num_classes: int, low_stage: int = -3, inter_channels: int = 128, aux_stages: Sequence[int] = ()
    ) -> None:
        super().__init__()
        stages = len(encoder.out_channels)
        if not -stages <= low_stage < stages - 1 or low_stage == -1:
            raise ValueError(f"model.net.low_stage={low_stage} for an encoder of {stages} stages; expected a stage finer than the coarsest")
        self.encoder = encoder
        self.low_stage = low_stage % stages
        self.head = LRASPPHead(encoder.out_channels[self.low_stage], encoder.out_channels[-1], num_classes, inter_channels)
        self.aux_heads = (
            _interpolating(AuxHeads(encoder.out_channels, encoder.steps, aux_stages, num_classes)) if list(aux_stages) else None
        )

    @property
    def min_input_size(self) -> tuple[int, int]:
        """Smallest ``(H, W)`` the model accepts: the encoder's."""
        return self.encoder.min_input_size

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``x (N, 3, H, W)`` → logits ``(N, K, H, W)``; aux heads never run."""
        return self._decode(self.encoder(x), x.shape[-2:])

    def forward_with_aux(self, x: torch.Tensor) -> tuple[torch.Tensor, list[torch.Tensor]]:
        """``x (N, 3, H, W)`` → ``(logits, aux)``, each ``(N, K, H, W)``; ``aux`` empty without aux heads."""
        features = self.encoder(x)
        size = (x.shape[-2], x.shape[-1])
        aux = [] if self.aux_heads is None else self.aux_heads(features, size)
        return self._decode(features, size), aux

    def _decode(self, features: list[torch.Tensor], size: Sequence[int]) -> torch.Tensor:
        scores = self.head({"low": features[self.low_stage], "high": features[-1]})
        return F.interpolate(scores, size=(size[0], size[1]), mode="bilinear", align_corners=False)


def lraspp(
    encoder: StagedEncoder, num_classes: int, *, low_stage: int = -3, inter_channels: int = 128, aux_stages: Sequence[int] = ()
) -> LRASPPOnEncoder:
    """`LRASPPOnEncoder` from a model config's ``net`` keys."""
    return LRASPPOnEncoder(encoder, num_classes, low_stage, inter_channels, aux_stages)
