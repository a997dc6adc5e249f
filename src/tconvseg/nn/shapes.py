"""Shape arithmetic of convolutions, poolings and transposed convolutions.

Everything here is per axis and integer-exact. The textbook formulas (docs/concepts.md, "Shape arithmetic") are special cases:

* transposed conv, stride 1, no padding: ``n + k - 1``
* transposed conv with padding ``p``:     ``n + k - 2p - 1``
* transposed conv with stride ``s``:      ``s(n - 1) + k``

A `DownStep` describes one downsampling step (a conv or pooling, or several composed into one)
and knows how to undo itself: a transposed convolution with the *same* kernel, stride, padding and
dilation maps ``out_size(n)`` back to exactly ``n`` once `output_padding_for` picks the
``output_padding``, which always lies in ``[0, stride)``.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass

Pair = tuple[int, int]


def as_pair(value: int | Iterable[int], name: str, *, minimum: int | None = None) -> Pair:
    """``(h, w)`` from an int (both axes) or a sequence of one or two ints, as PyTorch's layers take them.

    ``name`` is how the message calls the value; with ``minimum`` both items must be at least that.
    Raises ``ValueError`` (``"<name>=<value> is invalid; expected ..."``) for anything else, bools included.
    """
    items = (value, value) if isinstance(value, int) else tuple(value)
    if len(items) == 1:  # torch accepts one-element sequences for both axes
        items = items * 2
    ints = len(items) == 2 and all(isinstance(v, int) and not isinstance(v, bool) for v in items)
    if not ints or (minimum is not None and min(items) < minimum):
        bound = "" if minimum is None else f" >= {minimum}"
        raise ValueError(f"{name}={value!r} is invalid; expected an int{bound} or a pair of such ints")
    return (items[0], items[1])


def effective_kernel(kernel: int, dilation: int = 1) -> int:
    """Span of a dilated kernel: ``dilation * (kernel - 1) + 1``."""
    return dilation * (kernel - 1) + 1


def conv_out_size(n: int, kernel: int, stride: int = 1, padding: int = 0, dilation: int = 1) -> int:
    """Output length of a convolution or (floor-mode) pooling along one axis.

    ``floor((n + 2p - d(k-1) - 1) / s) + 1``; raises ``ValueError`` when the result would be < 1.
    """
    span = n + 2 * padding - effective_kernel(kernel, dilation)
    if span < 0:
        raise ValueError(
            f"input size {n} is too small for kernel={kernel}, dilation={dilation}, "
            f"padding={padding}: need n >= {effective_kernel(kernel, dilation) - 2 * padding}"
        )
    return span // stride + 1


def tconv_out_size(
    n: int,
    kernel: int,
    stride: int = 1,
    padding: int = 0,
    dilation: int = 1,
    output_padding: int = 0,
) -> int:
    """Output length of a transposed convolution along one axis.

    ``(n - 1)s - 2p + d(k - 1) + output_padding + 1`` (PyTorch's ``ConvTranspose2d`` formula).
    """
    return (n - 1) * stride - 2 * padding + dilation * (kernel - 1) + output_padding + 1


def max_output_padding(stride: int, dilation: int = 1) -> int:
    """Largest ``output_padding`` PyTorch accepts: it must be smaller than stride or dilation."""
    return max(stride, dilation) - 1


def output_padding_for(
    n_in: int,
    target: int,
    kernel: int,
    stride: int = 1,
    padding: int = 0,
    dilation: int = 1,
) -> int:
    """The ``output_padding`` that makes a transposed conv map ``n_in`` to exactly ``target``.

    Raises ``ValueError`` naming the reachable range when no legal ``output_padding`` exists.
    """
    if n_in < 1 or target < 1:
        raise ValueError(f"sizes must be >= 1, got input size {n_in} and target {target}")
    base = tconv_out_size(n_in, kernel, stride, padding, dilation, 0)
    most = max_output_padding(stride, dilation)
    needed = target - base
    # base can be < 1 when padding exceeds the kernel span; sizes < 1 are never reachable.
    if not 0 <= needed <= most:
        raise ValueError(
            f"a transposed conv with kernel={kernel}, stride={stride}, padding={padding}, "
            f"dilation={dilation} cannot map input size {n_in} to {target}: output_padding must lie in "
            f"[0, {most}] (it must be smaller than stride or dilation), so the reachable sizes are "
            f"{max(base, 1)}..{base + most}. The sizes the matching convolution maps to {n_in} are "
            f"{max(base, 1)}..{base + stride - 1}; {target} is not one of them."
        )
    return needed


@dataclass(frozen=True)
class DownStep:
    """One downsampling step in 2-D: kernel, stride, padding and dilation per axis ``(h, w)``.

    Read it off a module with `tconvseg.nn.walk.step_of`, compose steps with `then`, and
    undo it with a transposed convolution of the same parameters (see ``tconvseg.nn.matched``).
    """

    kernel: Pair = (1, 1)
    stride: Pair = (1, 1)
    padding: Pair = (0, 0)
    dilation: Pair = (1, 1)

    def __post_init__(self) -> None:
        for name in ("kernel", "stride", "padding", "dilation"):
            object.__setattr__(self, name, as_pair(getattr(self, name), name))
        if min(self.kernel) < 1 or min(self.stride) < 1 or min(self.dilation) < 1:
            raise ValueError(f"kernel, stride and dilation must be >= 1, got {self}")
        if min(self.padding) < 0:
            raise ValueError(f"padding must be >= 0, got {self}")

    @classmethod
    def identity(cls) -> DownStep:
        return cls()

    @property
    def effective_kernel(self) -> Pair:
        return (
            effective_kernel(self.kernel[0], self.dilation[0]),
            effective_kernel(self.kernel[1], self.dilation[1]),
        )

    @property
    def is_size_preserving(self) -> bool:
        """True when the output size equals the input size for every input size."""
        return self.stride == (1, 1) and all(e - 1 == 2 * p for e, p in zip(self.effective_kernel, self.padding))

    @property
    def min_input_size(self) -> Pair:
        """Smallest input size with an output of at least one pixel."""
        return min_input_size([self])

    def out_size(self, size: Iterable[int]) -> Pair:
        """Output ``(h, w)`` of this step for input ``(h, w)``."""
        h, w = as_pair(tuple(size), "size")
        return (
            conv_out_size(h, self.kernel[0], self.stride[0], self.padding[0], self.dilation[0]),
            conv_out_size(w, self.kernel[1], self.stride[1], self.padding[1], self.dilation[1]),
        )

    def output_padding_for(self, in_size: Iterable[int], target: Iterable[int]) -> Pair:
        """``output_padding`` that undoes this step: a transposed conv with the same parameters
        maps ``in_size`` (h, w) to ``target`` (h, w). ``ValueError`` when unreachable."""
        n = as_pair(tuple(in_size), "in_size")
        t = as_pair(tuple(target), "target")
        return (
            output_padding_for(n[0], t[0], self.kernel[0], self.stride[0], self.padding[0], self.dilation[0]),
            output_padding_for(n[1], t[1], self.kernel[1], self.stride[1], self.padding[1], self.dilation[1]),
        )

    def undilated(self) -> DownStep:
        """The same step with dilation folded into the kernel (``k' = d(k-1)+1``, ``d' = 1``)."""
        return DownStep(self.effective_kernel, self.stride, self.padding, (1, 1))

    def then(self, other: DownStep) -> DownStep:
        """Exact composition: this step followed by ``other``, as one step.

        ``S = s1*s2``, ``K = k1 + (k2 - 1)*s1``, ``P = p1 + p2*s1`` with dilation folded into
        the kernels first; the result gives the same output size for every input size for which
        both steps give at least one pixel.
        """
        if self.is_identity:
            return other
        if other.is_identity:
            return self
        a, b = self.undilated(), other.undilated()
        return DownStep(
            kernel=tuple(k1 + (k2 - 1) * s1 for k1, k2, s1 in zip(a.kernel, b.kernel, a.stride)),  # type: ignore[arg-type]
            stride=tuple(s1 * s2 for s1, s2 in zip(a.stride, b.stride)),  # type: ignore[arg-type]
            padding=tuple(p1 + p2 * s1 for p1, p2, s1 in zip(a.padding, b.padding, a.stride)),  # type: ignore[arg-type]
        )

    @property
    def is_identity(self) -> bool:
        return self == DownStep()

    def __str__(self) -> str:
        def fmt(p: Pair) -> str:
            return str(p[0]) if p[0] == p[1] else f"{p[0]}x{p[1]}"

        text = f"k{fmt(self.kernel)} s{fmt(self.stride)} p{fmt(self.padding)}"
        return text if self.dilation == (1, 1) else f"{text} d{fmt(self.dilation)}"


def compose(steps: Iterable[DownStep], skip_size_preserving: bool = True) -> DownStep:
    """Compose steps in order into one equivalent step.

    With ``skip_size_preserving`` (the default) steps that keep every size (stride 1 and
    ``d(k-1) = 2p``, e.g. a 3x3 conv with padding 1) are left out: they do not change the size
    map, only the receptive field, and leaving them out keeps the matched kernels small.
    """
    total = DownStep.identity()
    for step in steps:
        if skip_size_preserving and step.is_size_preserving:
            continue
        total = total.then(step)
    return total


def step_between(steps: Sequence[DownStep], finer: int, coarser: int) -> DownStep:
    """The composed step from the output of ``steps[finer]`` to that of ``steps[coarser]``.

    Indices count from 0 and must not be negative, except ``finer = -1`` for the chain's input:
    ``step_between(steps, -1, i)`` maps the input size to the size after step ``i``.
    """
    if not -1 <= finer <= coarser < len(steps):
        raise ValueError(f"need -1 <= finer <= coarser < {len(steps)}, got finer={finer}, coarser={coarser}")
    return compose(steps[finer + 1 : coarser + 1])


def min_input_size(steps: Iterable[DownStep]) -> Pair:
    """Smallest input ``(h, w)`` for which every step of the chain, in order, yields at least one pixel.

    Exact, walking the chain backwards: a step's output is ``>= m`` exactly when its input is
    ``>= (m - 1)s + d(k - 1) + 1 - 2p`` (and every size is ``>= 1``).
    """
    need = [1, 1]
    for step in reversed(list(steps)):
        for axis in (0, 1):
            e, p, s = step.effective_kernel[axis], step.padding[axis], step.stride[axis]
            need[axis] = max(1, (need[axis] - 1) * s + e - 2 * p)
    return (need[0], need[1])
