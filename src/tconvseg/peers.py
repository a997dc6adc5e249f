"""torchvision's segmentation models as peers in the same harness (same system, data, recipe, budget).

They live outside `tconvseg.nn` because they restore resolution with ``F.interpolate``, which
the project's own networks never do. Random init only: no weights are downloaded.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
from torch import nn
from torchvision.models import segmentation

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
        encoder, aux_stages: the shared model config's network keys; a peer brings its own backbone
            and has no aux heads here, so they must stay ``null`` / ``[]``.
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
