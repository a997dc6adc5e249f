"""FCN-style bilinear initialization for transposed convolutions of any kernel / stride / padding.

A transposed conv places input pixel ``i`` at output position ``i*s - p + d*(k-1)/2`` (the centre
of the receptive field of the conv it undoes). Bilinear upsampling by ``s`` is a triangle of
half-width ``s`` around that position. Each tap of the kernel gets the triangle's value at its
offset; taps are then normalized per output phase (output position mod ``s``) so that the weights
reaching any output pixel sum to one. With dilation 1 and ``k - 1 >= 2*(s - 1)`` this is exactly
bilinear interpolation (FCN's ``k = 2s`` kernels included); smaller or sparser (dilated) kernels
give the nearest partition-of-unity kernel (``k = s`` is nearest-neighbour; a phase the triangle
misses takes its nearest taps). Phases that no tap reaches at all (dilation and stride sharing a
factor) stay zero: such a step leaves holes whatever the weights.
"""

from __future__ import annotations

import torch


def bilinear_kernel_1d(kernel: int, stride: int, dilation: int = 1) -> torch.Tensor:
    """Weights ``(kernel,)`` of a 1-D bilinear transposed-conv kernel (see module docstring)."""
    taps = torch.arange(kernel, dtype=torch.float64) * dilation
    centre = dilation * (kernel - 1) / 2
    weights = (1 - (taps - centre).abs() / stride).clamp(min=0)
    phase = taps.long() % stride
    sums = torch.zeros(stride, dtype=torch.float64).index_add_(0, phase, weights)
    distance = (taps - centre).abs()
    for r in range(stride):
        in_phase = phase == r
        if sums[r] == 0 and in_phase.any():
            # Sparse dilated taps can miss the triangle: fall back to the nearest taps of that phase.
            nearest = in_phase & (distance == distance[in_phase].min())
            weights[nearest] = 1.0
            sums[r] = nearest.sum()
    norm = sums[phase]
    return torch.where(norm > 0, weights / norm.clamp(min=1e-12), torch.zeros_like(weights))


def unreached_phases(kernel: int, stride: int, dilation: int = 1) -> list[int]:
    """Output phases (position mod ``stride``) that no kernel tap of a transposed conv reaches.

    Non-empty when the kernel is shorter than the stride or dilation and stride share a factor
    (e.g. ``d = s = 2``): such a transposed conv leaves those pixels to the bias, whatever its weights.
    """
    reached = {(j * dilation) % stride for j in range(kernel)}
    return [r for r in range(stride) if r not in reached]


def bilinear_kernel_2d(
    kernel: tuple[int, int], stride: tuple[int, int], dilation: tuple[int, int] = (1, 1)
) -> torch.Tensor:
    """Separable 2-D bilinear kernel ``(kH, kW)``: outer product of the per-axis kernels."""
    kh = bilinear_kernel_1d(kernel[0], stride[0], dilation[0])
    kw = bilinear_kernel_1d(kernel[1], stride[1], dilation[1])
    return torch.outer(kh, kw)


@torch.no_grad()
def fill_bilinear_(weight: torch.Tensor, stride: tuple[int, int], dilation: tuple[int, int] = (1, 1), groups: int = 1) -> None:
    """Fill a ``ConvTranspose2d`` weight ``(C_in, C_out/groups, kH, kW)`` in place.

    Each channel is upsampled on its own: channel ``c`` of the input feeds channel ``c`` of the
    output; all other entries are zero. Needs ``C_in == C_out``.
    """
    c_in, c_out_per_group, kh, kw = weight.shape
    c_out = c_out_per_group * groups
    if c_in != c_out:
        raise ValueError(
            f"bilinear initialization upsamples each channel on its own and needs as many output as "
            f"input channels; got {c_in} in and {c_out} out. Use init='default', or project the "
            "channels with a 1x1 conv before upsampling."
        )
    kernel = bilinear_kernel_2d((kh, kw), stride, dilation).to(weight.dtype)
    weight.zero_()
    for c in range(c_in):
        weight[c, c % c_out_per_group] = kernel
