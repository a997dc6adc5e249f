"""Encoders described as data: stages, each with its output channels and its downsampling step.

The decoder never types a channel count or a padding: it reads ``encoder.out_channels`` and
``encoder.steps`` (both read off the modules: steps by walking them, channels by one probe
forward at construction, which also checks that the walked steps predict the real sizes).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from tconvseg.nn.shapes import DownStep, compose, min_input_size, step_between
from tconvseg.nn.walk import atomic_steps


class StagedEncoder(nn.Module):
    """Runs ``stages`` in order and returns every stage's output.

    ``forward(x (N, C, H, W))`` returns ``[f_1, ..., f_S]`` where ``f_i`` has
    ``out_channels[i]`` channels and size ``steps[i]`` applied to the size of ``f_{i-1}``
    (``f_0 = x``).

    Attributes:
        out_channels: channels of each stage's output.
        steps: each stage's composed downsampling step (size-preserving layers left out).
        min_input_size: smallest ``(H, W)`` for which every stage yields at least one pixel.
    """

    def __init__(self, stages: Sequence[nn.Module], in_channels: int = 3) -> None:
        super().__init__()
        if not stages:
            raise ValueError("an encoder needs at least one stage")
        self.stages = nn.ModuleList(stages)
        self.in_channels = in_channels
        atoms = [atomic_steps(stage) for stage in self.stages]
        self.steps: list[DownStep] = [compose(a) for a in atoms]
        self.min_input_size = min_input_size([step for a in atoms for step in a])
        self.out_channels: list[int] = self._probe_channels()

    @classmethod
    def from_layers(cls, layers: Sequence[nn.Module], in_channels: int = 3) -> StagedEncoder:
        """Group a flat list of layers into stages: a new stage starts at each downsampling layer
        (stride > 1) once the current stage already downsamples. Leading full-resolution layers
        join the first stage; trailing ones join the last."""
        stages: list[list[nn.Module]] = [[]]
        downsampled = False
        for layer in layers:
            strided = any(s > 1 for s in compose(atomic_steps(layer)).stride)
            if strided and downsampled:
                stages.append([])
            downsampled = downsampled or strided
            stages[-1].append(layer)
        return cls([nn.Sequential(*s) for s in stages], in_channels)

    def step_between(self, finer: int, coarser: int) -> DownStep:
        """The step from the output of stage ``finer`` to that of stage ``coarser``
        (``finer = -1`` is the input image); stage indices count from 0."""
        return step_between(self.steps, finer, coarser)

    @property
    def strides(self) -> list[tuple[int, int]]:
        """Cumulative stride of each stage's output relative to the input."""
        return [self.step_between(-1, i).stride for i in range(len(self.steps))]

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        features = []
        for stage in self.stages:
            x = stage(x)
            features.append(x)
        return features

    def _probe_channels(self) -> list[int]:
        # An odd size catches walking mistakes that happen to agree on powers of two.
        size = (max(self.min_input_size[0], 37), max(self.min_input_size[1], 41))
        was_training = self.training
        self.eval()
        try:
            with torch.no_grad():
                x = torch.zeros(1, self.in_channels, *size)
                expected = size
                channels = []
                for i, (stage, step) in enumerate(zip(self.stages, self.steps)):
                    x = stage(x)
                    expected = step.out_size(expected)
                    if tuple(x.shape[-2:]) != expected:
                        raise ValueError(
                            f"stage {i} ({type(stage).__name__}) produced size {tuple(x.shape[-2:])} but its "
                            f"walked step ({step}) predicts {expected}: a block on its path is walked wrongly. "
                            "Teach the walker with tconvseg.nn.register_step_rule(BlockType, rule)."
                        )
                    channels.append(int(x.shape[1]))
        finally:
            self.train(was_training)
        return channels

