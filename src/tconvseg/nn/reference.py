"""A from-scratch transposed convolution, written the way the textbook explains it (docs/concepts.md, "Shape arithmetic").

Every input element scales the kernel and is added into the output window it starts. Instead of
looping over input pixels we loop over kernel taps: tap ``(i, j)`` sends the whole (channel-mixed)
input to a strided slice of the output, which is the same sum taken in a different order. Only
slicing, ``einsum`` and additions are used, so autograd's gradients are an independent check of
``torch.nn.functional.conv_transpose2d`` (tests compare the two).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor

from tconvseg.nn.shapes import as_pair


def deconv_2d(X: Tensor, K: Tensor) -> Tensor:
    """Single-channel transposed conv, stride 1, no padding: ``(n_h, n_w), (k_h, k_w) -> (n_h+k_h-1, n_w+k_w-1)``."""
    if X.dim() != 2 or K.dim() != 2:
        raise ValueError(f"deconv_2d expects 2-D X and K, got shapes {tuple(X.shape)} and {tuple(K.shape)}")
    (n_h, n_w), (k_h, k_w) = X.shape, K.shape
    Y = X.new_zeros(n_h + k_h - 1, n_w + k_w - 1, dtype=torch.result_type(X, K))
    # Tap (i, j) of K meets X[a, b] at Y[a + i, b + j]: one shifted copy of X per tap.
    for i in range(k_h):
        for j in range(k_w):
            Y[i : i + n_h, j : j + n_w] += K[i, j] * X
    return Y


def conv_transpose2d_reference(
    input: Tensor,
    weight: Tensor,
    bias: Tensor | None = None,
    stride: int | Sequence[int] = 1,
    padding: int | Sequence[int] = 0,
    output_padding: int | Sequence[int] = 0,
    groups: int = 1,
    dilation: int | Sequence[int] = 1,
) -> Tensor:
    """Drop-in for ``torch.nn.functional.conv_transpose2d``, built from slices and ``einsum``.

    Shapes: ``input`` ``(N, C_in, H, W)`` or unbatched ``(C_in, H, W)``; ``weight``
    ``(C_in, C_out // groups, kH, kW)``; ``bias`` ``(C_out,)``. Output ``(N, C_out, H_out, W_out)``
    (unbatched in, unbatched out) with ``H_out = (H-1)*sH - 2*pH + dH*(kH-1) + opH + 1``, same for W.
    Raises ``ValueError`` for arguments ``conv_transpose2d`` rejects.
    """
    s, p = as_pair(stride, "stride"), as_pair(padding, "padding")
    op, d = as_pair(output_padding, "output_padding"), as_pair(dilation, "dilation")
    if min(s) < 1 or min(d) < 1:
        raise ValueError(f"stride and dilation must be >= 1, got stride={s}, dilation={d}")
    if min(p) < 0 or min(op) < 0:
        raise ValueError(f"padding and output_padding must be >= 0, got padding={p}, output_padding={op}")
    # PyTorch's rule: each output_padding must be below stride or below dilation on its axis.
    for axis, (o, s_, d_) in enumerate(zip(op, s, d)):
        if o >= max(s_, d_):
            raise ValueError(
                f"output_padding[{axis}]={o} must be smaller than stride ({s_}) or dilation ({d_}), "
                f"i.e. at most {max(s_, d_) - 1}"
            )
    if not isinstance(groups, int) or groups < 1:
        raise ValueError(f"groups must be a positive int, got {groups!r}")
    if input.dim() not in (3, 4):
        raise ValueError(f"input must be (N, C_in, H, W) or (C_in, H, W), got shape {tuple(input.shape)}")
    if weight.dim() != 4:
        raise ValueError(f"weight must be (C_in, C_out // groups, kH, kW), got shape {tuple(weight.shape)}")
    unbatched = input.dim() == 3
    x = input.unsqueeze(0) if unbatched else input
    n, c_in, h, w = x.shape
    w_in, c_out_g, k_h, k_w = weight.shape
    if w_in != c_in:
        raise ValueError(f"weight.shape[0] must equal the input channels {c_in}, got weight shape {tuple(weight.shape)}")
    if c_in % groups != 0:
        raise ValueError(f"input channels {c_in} must be divisible by groups={groups}")
    c_out = c_out_g * groups
    if bias is not None and tuple(bias.shape) != (c_out,):
        raise ValueError(f"bias must have shape ({c_out},) (C_out), got {tuple(bias.shape)}")
    if x.dtype != weight.dtype:
        raise ValueError(f"input and weight must share a dtype, got {x.dtype} and {weight.dtype}")

    # Full canvas: every (input pixel, tap) pair lands inside it; output_padding extends it at the
    # far end, and padding is then cropped from both sides.
    full = [(n_ - 1) * s_ + d_ * (k_ - 1) + 1 + o for n_, s_, d_, k_, o in zip((h, w), s, d, (k_h, k_w), op)]
    out = [f - 2 * p_ for f, p_ in zip(full, p)]
    if min(out) < 1:
        raise ValueError(
            f"input size {(h, w)} gives a negative or zero output size {tuple(out)} with kernel "
            f"{(k_h, k_w)}, stride={s}, padding={p}, dilation={d}, output_padding={op}; expected >= 1"
        )
    xg = x.reshape(n, groups, c_in // groups, h, w)
    wg = weight.reshape(groups, c_in // groups, c_out_g, k_h, k_w)
    canvas = x.new_zeros(n, c_out, full[0], full[1])
    for i in range(k_h):
        for j in range(k_w):
            # Channels mix only within a group; tap (i, j) moves input pixel (a, b) to canvas
            # (a*s + i*d, b*s + j*d), so the whole contribution is one strided slice.
            contrib = torch.einsum("ngchw,gco->ngohw", xg, wg[..., i, j]).reshape(n, c_out, h, w)
            r0, c0 = i * d[0], j * d[1]
            canvas[:, :, r0 : r0 + (h - 1) * s[0] + 1 : s[0], c0 : c0 + (w - 1) * s[1] + 1 : s[1]] += contrib
    y = canvas[:, :, p[0] : p[0] + out[0], p[1] : p[1] + out[1]]
    if bias is not None:
        y = y + bias.view(1, c_out, 1, 1)
    return y.squeeze(0) if unbatched else y
