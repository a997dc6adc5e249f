"""The matched transposed convolution: undo a downsampling step, landing on any requested size."""

from __future__ import annotations

import warnings
from typing import Literal

import torch
import torch.nn.functional as F
from torch import nn

from tconvseg.nn.bilinear import fill_bilinear_, unreached_phases
from tconvseg.nn.shapes import DownStep, max_output_padding
from tconvseg.nn.walk import step_of

Init = Literal["bilinear", "default"]


def _tracing() -> bool:
    """True while torch.export / torch.jit.trace / torch.compile records a graph (sizes may be symbolic)."""
    return torch.jit.is_tracing() or torch.compiler.is_compiling() or torch.compiler.is_exporting()


def _crop(y: torch.Tensor, height: int | torch.SymInt, width: int | torch.SymInt) -> torch.Tensor:
    """The top-left ``(height, width)`` of ``y (N, C, H', W')``, ``height <= H'``, ``width <= W'``.

    A slice (a free view) everywhere but in ``torch.export``: there a view's strides depend on
    whether the crop removes anything, so the exporter would specialise the graph to the example
    input's sizes. Gathering the rows and columns is size-agnostic and gives the same numbers.
    """
    if not torch.compiler.is_exporting():
        return y[..., :height, :width]
    rows = torch.arange(height, device=y.device)
    cols = torch.arange(width, device=y.device)
    return y.index_select(-2, rows).index_select(-1, cols)


class MatchedConvTranspose2d(nn.ConvTranspose2d):
    """A ``ConvTranspose2d`` whose kernel, stride, padding and dilation are those of ``step``.

    ``forward(x, output_size)`` picks ``output_padding`` per call so that the output has exactly
    ``output_size``. Any size the matching step maps to ``x``'s size is reachable, so restoring
    the size of the step's input always works, for every input size (see ``shapes.py``).

    Args:
        in_channels: channels of ``x``.
        out_channels: channels of the output.
        step: the step to undo: a `DownStep`, or a module it is read from.
        init: ``"bilinear"`` (FCN-style, needs ``in_channels == out_channels``) or ``"default"``
            (PyTorch's Kaiming-uniform).
        trainable: whether the weights learn (FCN learns them; a fixed bilinear kernel is plain
            bilinear upsampling).
        bias: add a learnable bias (initialized to zero with ``init="bilinear"``).

    Shapes: ``x`` is ``(N, C_in, h, w)``; output ``(N, C_out, H, W)`` with ``(H, W) = output_size``.
    """

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        step: DownStep | nn.Module,
        *,
        init: Init = "bilinear",
        trainable: bool = True,
        bias: bool = True,
    ) -> None:
        step = step if isinstance(step, DownStep) else step_of(step)
        super().__init__(
            in_channels,
            out_channels,
            kernel_size=step.kernel,
            stride=step.stride,
            padding=step.padding,
            dilation=step.dilation,
            bias=bias,
        )
        self.step = step
        self.init = init
        holes = [unreached_phases(k, s, d) for k, s, d in zip(step.kernel, step.stride, step.dilation)]
        if any(holes):
            warnings.warn(
                f"the matched transposed conv for step ({step}) reaches no output pixel at positions "
                f"with phase {holes[0] or '-'} (rows) / {holes[1] or '-'} (cols) modulo the stride: its "
                "kernel is shorter than its stride or its dilation shares a factor with the stride, so "
                "those pixels get only the bias. Prefer encoder steps with kernel >= stride and dilation "
                "coprime to the stride.",
                stacklevel=2,
            )
        if init == "bilinear":
            fill_bilinear_(self.weight, step.stride, step.dilation)
            if self.bias is not None:
                nn.init.zeros_(self.bias)
        elif init != "default":
            raise ValueError(f"init must be 'bilinear' or 'default', got {init!r}")
        self.requires_grad_(trainable)

    def output_padding_for(self, in_size: tuple[int, int], output_size: tuple[int, int]) -> tuple[int, int]:
        try:
            return self.step.output_padding_for(in_size, output_size)
        except ValueError as err:
            raise ValueError(f"{type(self).__name__}({self.step}): {err}") from None

    def forward(self, x: torch.Tensor, output_size: tuple[int, int] | torch.Size | None = None) -> torch.Tensor:  # type: ignore[override]
        """Bring ``x`` to ``output_size`` (``(H, W)``); without it, ``output_padding = 0``.

        ``output_padding`` only appends rows and columns at the far edge, so running with the
        largest one PyTorch allows and cropping to ``output_size`` gives the same numbers as the
        exact ``output_padding``. That keeps the graph free of size-dependent constants: exported
        (ONNX, TorchScript) models take any input size, the crop reading the runtime target size.
        """
        if output_size is None:
            return F.conv_transpose2d(x, self.weight, self.bias, self.stride, self.padding, 0, self.groups, self.dilation)
        height, width = output_size[-2], output_size[-1]
        if not _tracing():  # eager: the same clear error as before for an unreachable size
            self.output_padding_for((int(x.shape[-2]), int(x.shape[-1])), (int(height), int(width)))
        y = F.conv_transpose2d(
            x, self.weight, self.bias, self.stride, self.padding, self.max_output_padding, self.groups, self.dilation
        )
        return _crop(y, height, width)

    @property
    def max_output_padding(self) -> tuple[int, int]:
        """The largest ``output_padding`` PyTorch accepts per axis: below stride or dilation."""
        return (max_output_padding(self.stride[0], self.dilation[0]), max_output_padding(self.stride[1], self.dilation[1]))

    def extra_repr(self) -> str:
        return f"{super().extra_repr()}, matched to ({self.step}), init={self.init}"
