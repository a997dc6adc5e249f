"""TensorFlow's ``padding="SAME"`` for a strided convolution, as a step the shape algebra understands.

TF pads a conv so that its output has ``ceil(n / s)`` pixels, splitting the padding ``max((ceil(n/s) - 1)s +
d(k-1) + 1 - n, 0)`` with the odd pixel at the bottom / right: at stride 2 and kernel 3 an even ``n`` is padded
``(0, 1)``, an odd one ``(1, 1)``. The padding depends on the input size, so it is not a fixed
``nn.Conv2d(padding=...)``; `Conv2dSame` computes it per call, as the checkpoints trained under TF expect
(EfficientNet-Lite's).

For an odd kernel the *size map* is that of the symmetric step ``DownStep(k, s, d(k-1)/2, d)``:
``floor((n + d(k-1) - d(k-1) - 1)/s) + 1 = floor((n-1)/s) + 1 = ceil(n/s)``. `same_step` returns that step, the
walker reads a `Conv2dSame` as it, and the matched transposed convolution undoes it to any size exactly (its
``output_padding`` is chosen per call as for every other step). Only the half-pixel alignment differs from the
symmetric conv, which the decoder's learned upsampling absorbs. Even kernels are refused: their TF size map is
the same, but no symmetric step has it.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from tconvseg.nn.shapes import DownStep, as_pair


def same_padding(size: int, kernel: int, stride: int, dilation: int) -> tuple[int, int]:
    """``(before, after)`` padding of one axis of length ``size`` under TF "SAME" (the odd pixel after).

    TF's ``max((ceil(n/s) - 1)s + d(k-1) + 1 - n, 0)`` written as ``d(k-1) + 1 - s + (-n mod s)``: integer
    arithmetic on ``size`` only, so that a traced or exported model keeps H and W dynamic (no float ``ceil``,
    no comparison on the size). The ``max`` with 0 only matters when the kernel spans less than the stride, which
    is decided by the constants alone.
    """
    span = dilation * (kernel - 1) + 1
    total = span - stride + (-size) % stride
    if span < stride:
        total = max(total, 0)
    return total // 2, total - total // 2


class Conv2dSame(nn.Conv2d):
    """``nn.Conv2d`` with TF "SAME" padding computed from each input's size; output ``(N, C_out, ceil(H/s), ceil(W/s))``.

    Same arguments as ``nn.Conv2d`` but ``padding`` (there is none to give) and ``padding_mode`` (zeros); the
    state dict is ``nn.Conv2d``'s, so TF-trained weights load as they are.

    Raises:
        ValueError: an even kernel (its size map is not a symmetric step the decoder can match).
    """

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int | tuple[int, int], stride: int | tuple[int, int] = 1,
                 dilation: int | tuple[int, int] = 1, groups: int = 1, bias: bool = True) -> None:
        kernel = as_pair(kernel_size, "kernel_size", minimum=1)
        if kernel[0] % 2 == 0 or kernel[1] % 2 == 0:
            raise ValueError(f"Conv2dSame kernel_size={kernel_size!r}: expected odd kernels (an even one has no matched symmetric step)")
        super().__init__(in_channels, out_channels, kernel, stride, 0, dilation, groups, bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        top, bottom = same_padding(x.shape[-2], self.kernel_size[0], self.stride[0], self.dilation[0])
        left, right = same_padding(x.shape[-1], self.kernel_size[1], self.stride[1], self.dilation[1])
        if top or bottom or left or right:
            x = F.pad(x, (left, right, top, bottom))
        return F.conv2d(x, self.weight, self.bias, self.stride, 0, self.dilation, self.groups)

    def down_step(self) -> DownStep:
        """What the walker reads (`tconvseg.nn.walk.atomic_steps`): `same_step` of this conv."""
        return same_step(self)


def same_step(conv: Conv2dSame) -> DownStep:
    """The symmetric step with ``conv``'s size map (see the module docstring): kernel, stride, dilation, padding ``d(k-1)/2``."""
    k, d = conv.kernel_size, conv.dilation
    return DownStep(k, conv.stride, (d[0] * (k[0] - 1) // 2, d[1] * (k[1] - 1) // 2), d)
