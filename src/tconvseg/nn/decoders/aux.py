"""Auxiliary heads for deep supervision: class scores from intermediate encoder stages.

Each head is a 1x1 score conv on one stage's output followed by one matched transposed conv that
undoes every encoder step up to that stage, so its scores come back at the input size like the
main logits. They are used in training only: `EncoderDecoder.forward_with_aux` returns them
and the loss weights them; ``forward`` never runs them.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from tconvseg.nn.matched import Init, MatchedConvTranspose2d
from tconvseg.nn.shapes import DownStep, step_between


def normalise_stages(stages: Sequence[int], num_stages: int) -> list[int]:
    """Stage indices in ``[0, num_stages)``; negative ones count from the end (``-1`` = coarsest)."""
    result = []
    for stage in stages:
        if not -num_stages <= stage < num_stages:
            raise ValueError(f"aux stage {stage} is out of range for an encoder with {num_stages} stages")
        result.append(stage % num_stages)
    if len(set(result)) != len(result):
        raise ValueError(f"aux stages {list(stages)} name a stage twice")
    return result


class AuxHeads(nn.Module):
    """One score head per chosen encoder stage, each restored to the input size.

    ``forward(features, size)``: the encoder's stage outputs and the input ``(H, W)`` → a list of
    ``(N, num_classes, H, W)`` logits, one per stage in ``stages`` order.

    Args:
        encoder_channels: the encoder's ``out_channels``.
        encoder_steps: the encoder's ``steps``.
        stages: encoder stage indices (negative count from the end, e.g. ``[-2]``).
        num_classes: ``K``.
        upsample_init: ``"bilinear"`` or ``"default"``.
        upsample_trainable: whether the upsampling kernels learn.
    """

    def __init__(
        self,
        encoder_channels: Sequence[int],
        encoder_steps: Sequence[DownStep],
        stages: Sequence[int],
        num_classes: int,
        *,
        upsample_init: Init = "bilinear",
        upsample_trainable: bool = True,
    ) -> None:
        super().__init__()
        self.stages = normalise_stages(stages, len(encoder_steps))
        self.scores = nn.ModuleList(nn.Conv2d(encoder_channels[i], num_classes, 1) for i in self.stages)
        self.ups = nn.ModuleList(
            MatchedConvTranspose2d(
                num_classes, num_classes, step_between(encoder_steps, -1, i),
                init=upsample_init, trainable=upsample_trainable,
            )
            for i in self.stages
        )

    def forward(self, features: Sequence[torch.Tensor], size: tuple[int, int]) -> list[torch.Tensor]:
        """``features`` ``[(N, C_i, h_i, w_i)]``, ``size`` ``(H, W)`` → ``[(N, K, H, W)]`` per stage."""
        return [up(score(features[i]), size) for i, score, up in zip(self.stages, self.scores, self.ups)]
