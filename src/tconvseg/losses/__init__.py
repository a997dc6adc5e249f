"""Segmentation losses with one calling convention (pure torch).

Every loss is an ``nn.Module`` built as ``Loss(weight=None, ignore_index=-100, *, **options)`` and
called as ``loss(logits, target)``:

- ``logits``: ``(N, K, H, W)`` floating point, unnormalised class scores;
- ``target``: ``(N, H, W)`` int64, values in ``[0, K)`` or ``ignore_index``;
- result: a scalar tensor (0-d) attached to the graph of ``logits``.

The shared contract (enforced by `SegmentationLoss`):

- ``weight`` is ``None`` or ``K`` non-negative per-class weights. It is *copied* into a
  non-persistent buffer, so it moves with ``.to(device)`` but is not part of ``state_dict()``: a
  loss is configuration, and a checkpoint must load whatever loss the evaluating config picks.
  Each loss documents what it does with the weights (`LovaszSoftmax` ignores them).
  `SegmentationLoss.set_weight` replaces them later (e.g. once they are computed from data).
- Pixels whose target equals ``ignore_index`` do not affect the value or the gradient.
- A batch with nothing to average over (every pixel ignored, or, for the losses that use weights,
  every counted pixel or class of weight 0) gives ``0``, not NaN, still attached to the graph
  (its gradient is zero).
- Bad inputs raise ``ValueError`` naming the value and what was expected: logits not 4-D or not
  floating point, target not int64 or not ``(N, H, W)``, ``len(weight) != K``, target values
  outside ``[0, K)`` other than ``ignore_index``. The range check reads two counts back from the
  device (one synchronisation) per call; the other losses synchronise anyway to select pixels.

The system builds its loss from a Hydra ``_partial_`` config as
``loss_factory(weight=class_weights, ignore_index=ignore_index)``; ``configs/loss/`` holds one
option per loss.
"""

from .base import SegmentationLoss
from .combined import CombinedLoss
from .cross_entropy import CrossEntropy, OhemCrossEntropy
from .dice import DiceLoss
from .lovasz import LovaszSoftmax

__all__ = [
    "CombinedLoss",
    "CrossEntropy",
    "DiceLoss",
    "LovaszSoftmax",
    "OhemCrossEntropy",
    "SegmentationLoss",
]
