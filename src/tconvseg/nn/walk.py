"""Read the downsampling step of a module by walking it.

Rules, in order:

1. ``nn.Conv2d``, ``nn.MaxPool2d``, ``nn.AvgPool2d``: their own kernel / stride / padding /
   dilation. A layer with a ``down_step()`` method states its own step (`tconvseg.nn.same_conv.Conv2dSame`,
   TF "SAME" padding, gives the symmetric step of its size map).
   ``ceil_mode=True`` and string paddings that are not size-preserving are refused, because their
   size map is not a single step.
2. A type registered with `register_step_rule`: the rule lists the sub-modules on the main
   path, or says the module keeps the size. The rule of the most specific registered class (first
   in the module type's MRO) wins. Encoder families register the rules of their blocks beside
   their builders (torchvision's in ``tconvseg.nn.encoders.torchvision``).
3. A module without children (norms, activations, dropout, ...): size-preserving. Leaves known
   to resize by other means (``ConvTranspose2d``, ``PixelShuffle``, ``LPPool2d``, ...) are
   refused rather than silently read as size-preserving.
4. Any other container (``nn.Sequential`` included): its children, composed in registration
   order. Shortcut branches named ``downsample`` or ``shortcut`` are skipped.

Steps come out exactly composed (see `tconvseg.nn.shapes.compose`), size-preserving layers
left out. Modules whose size map is not a single step (global pooling in the main path, for
example) raise ``ValueError`` naming the module.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable

from torch import nn

from tconvseg.nn.shapes import DownStep, compose

#: A rule returns the modules on the main path, in order, or ``None`` for "keeps the size".
StepRule = Callable[[nn.Module], "Iterable[nn.Module] | None"]

_RULES: dict[type[nn.Module], StepRule] = {}
_SHORTCUT_NAMES = frozenset({"downsample", "shortcut"})
_SIZE_FREE_LEAVES = (nn.AdaptiveAvgPool2d, nn.AdaptiveMaxPool2d)
# Leaves that change the spatial size but are not a conv / pooling step: without this list rule 3
# would read them as size-preserving and every prediction after them would be wrong.
_RESIZING_LEAVES = (
    nn.ConvTranspose2d,
    nn.PixelShuffle,
    nn.PixelUnshuffle,
    nn.LPPool2d,
    nn.FractionalMaxPool2d,
    nn.MaxUnpool2d,
)


def register_step_rule(module_type: type[nn.Module], rule: StepRule) -> None:
    """Teach `step_of` how to walk a block type (main-path modules, or ``None``)."""
    _RULES[module_type] = rule


def _conv_step(m: nn.Conv2d) -> DownStep:
    if isinstance(m.padding, str):
        if m.padding == "valid":
            return DownStep(m.kernel_size, m.stride, 0, m.dilation)
        # PyTorch only allows padding="same" with stride 1: it keeps the size by construction.
        return DownStep.identity()
    return DownStep(m.kernel_size, m.stride, m.padding, m.dilation)


def _pool_step(m: nn.MaxPool2d | nn.AvgPool2d) -> DownStep:
    if m.ceil_mode:
        raise ValueError(
            f"{m!r} uses ceil_mode=True, whose output size is not a single floor-mode step; "
            "use ceil_mode=False (the default) in encoders that tconvseg decodes"
        )
    stride = m.stride if m.stride is not None else m.kernel_size
    dilation = getattr(m, "dilation", 1)
    return DownStep(m.kernel_size, stride, m.padding, dilation)


def atomic_steps(module: nn.Module) -> list[DownStep]:
    """The conv / pooling steps on ``module``'s main path, in order, size-preserving ones left out."""
    if callable(getattr(module, "down_step", None)):  # a layer that states its own step (Conv2dSame)
        steps = [module.down_step()]
    elif isinstance(module, nn.Conv2d):
        steps = [_conv_step(module)]
    elif isinstance(module, (nn.MaxPool2d, nn.AvgPool2d)):
        steps = [_pool_step(module)]
    elif isinstance(module, _SIZE_FREE_LEAVES):
        raise ValueError(
            f"{type(module).__name__} in the main path maps every size to a fixed size; it has no "
            "matching transposed convolution. Leave global pooling out of the encoder stages."
        )
    elif isinstance(module, _RESIZING_LEAVES):
        raise ValueError(
            f"{type(module).__name__} changes the spatial size but is not a conv / pooling step that "
            "tconvseg can undo; keep it out of the encoder stages, or register_step_rule a rule for "
            "the block that contains it"
        )
    else:
        parts = _main_path(module)
        return [step for part in parts for step in atomic_steps(part)]
    return [step for step in steps if not step.is_size_preserving]


def _main_path(module: nn.Module) -> list[nn.Module]:
    # Walk the MRO so that a rule for a subclass beats one registered for its base class.
    for module_type in type(module).__mro__:
        rule = _RULES.get(module_type)
        if rule is not None:
            parts = rule(module)
            return [] if parts is None else list(parts)
    return [child for name, child in module.named_children() if name not in _SHORTCUT_NAMES]


def step_of(module: nn.Module) -> DownStep:
    """The composed downsampling step of ``module`` (see the module docstring for the rules)."""
    return compose(atomic_steps(module))
