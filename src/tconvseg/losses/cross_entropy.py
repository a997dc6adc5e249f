"""Weighted cross-entropy and its hard-pixel (OHEM / top-k) variant."""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor

from .base import SegmentationLoss, WeightLike, _safe_ratio, _zero


class CrossEntropy(SegmentationLoss):
    """Pixel-wise cross-entropy, exactly ``F.cross_entropy(logits, target, weight, ignore_index, label_smoothing)``.

    With weights ``w`` the value is ``sum_i w[t_i] * l_i / sum_i w[t_i]`` over valid pixels ``i``
    (torch's weighted mean), ``l_i`` the (smoothed) cross-entropy of pixel ``i``. The one
    difference from ``F.cross_entropy``: when that denominator is 0 (no valid pixel, or only
    pixels of weight-0 classes, which median-frequency weights give to classes unseen in
    training) the result is 0 instead of NaN.

    Args:
        weight: per-class weights as above, or ``None`` (all 1).
        ignore_index: see `SegmentationLoss`.
        label_smoothing: ``eps`` in ``[0, 1]``; the target becomes ``(1 - eps) * onehot + eps / K``.
    """

    def __init__(self, weight: WeightLike = None, ignore_index: int = -100, *, label_smoothing: float = 0.0) -> None:
        super().__init__(weight, ignore_index)
        if not 0.0 <= label_smoothing <= 1.0:
            raise ValueError(f"label_smoothing must be in [0, 1], got {label_smoothing}")
        self.label_smoothing = float(label_smoothing)

    def forward(self, logits: Tensor, target: Tensor) -> Tensor:
        valid, n_valid = self.check_inputs(logits, target)
        if n_valid == 0:
            return _zero(logits)
        weight = None if self.weight is None else self.weight.to(logits.device, logits.dtype)
        if weight is not None and not bool(weight[target[valid]].sum() > 0):
            return _zero(logits)
        return F.cross_entropy(
            logits, target, weight=weight, ignore_index=self.ignore_index, label_smoothing=self.label_smoothing
        )

    def extra_repr(self) -> str:
        return f"{super().extra_repr()}, label_smoothing={self.label_smoothing}"


class OhemCrossEntropy(SegmentationLoss):
    """Online hard example mining: cross-entropy over the hardest valid pixels of the batch only.

    Hardness is the unweighted cross-entropy ``-log p_i(t_i)`` (equivalently: a low probability of
    the true class); pixels of all images in the batch compete together. The kept set is the
    ``n_keep`` hardest valid pixels, with

        ``n_keep = min(M, max(ceil(keep_ratio * M), #{i: p_i(t_i) < threshold}, min_kept))``

    over the ``M`` valid pixels, each term present only when its option is set. So
    ``keep_ratio`` alone is top-k pixel CE; ``threshold`` (+ ``min_kept``) is the OHEM of
    PSPNet / OCRNet (pixels with true-class probability below ``threshold``, at least
    ``min_kept``); both together make ``keep_ratio`` a relative floor under the threshold rule.
    Which of several equally hard pixels is kept at the boundary is unspecified.

    Weights decide how much each kept pixel counts, not which pixels are kept: the value is the
    weighted mean ``sum_{i kept} w[t_i] * l_i / sum_{i kept} w[t_i]`` (the plain mean without
    weights). With ``keep_ratio=1`` this equals `CrossEntropy` (no label smoothing).
    Nothing kept, or only weight-0 pixels kept, gives 0.

    Args:
        weight: per-class weights, or ``None``.
        ignore_index: see `SegmentationLoss`.
        keep_ratio: fraction of valid pixels to keep, in ``(0, 1]``.
        threshold: keep pixels whose true-class probability is below this, in ``(0, 1]``.
        min_kept: keep at least this many pixels (fewer only if there are fewer valid pixels).
    At least one of ``keep_ratio`` and ``threshold`` must be given.
    """

    def __init__(
        self,
        weight: WeightLike = None,
        ignore_index: int = -100,
        *,
        keep_ratio: float | None = None,
        threshold: float | None = None,
        min_kept: int = 0,
    ) -> None:
        super().__init__(weight, ignore_index)
        if keep_ratio is None and threshold is None:
            raise ValueError("OhemCrossEntropy needs keep_ratio and/or threshold, got neither")
        if keep_ratio is not None and not 0.0 < keep_ratio <= 1.0:
            raise ValueError(f"keep_ratio must be in (0, 1], got {keep_ratio}")
        if threshold is not None and not 0.0 < threshold <= 1.0:
            raise ValueError(f"threshold must be a probability in (0, 1], got {threshold}")
        if isinstance(min_kept, bool) or not isinstance(min_kept, int) or min_kept < 0:
            raise ValueError(f"min_kept must be a non-negative int, got {min_kept!r}")
        self.keep_ratio = None if keep_ratio is None else float(keep_ratio)
        self.threshold = None if threshold is None else float(threshold)
        self.min_kept = min_kept

    def num_kept(self, pixel_loss: Tensor) -> int:
        """``n_keep`` (see the class docstring) for the unweighted losses ``(M,)`` of the valid pixels."""
        m = pixel_loss.numel()
        n = self.min_kept
        if self.keep_ratio is not None:
            # round() first: 0.07 * 100 is 7.000000000000001 in floating point, whose ceil is 8.
            n = max(n, math.ceil(round(self.keep_ratio * m, 6)))
        if self.threshold is not None:
            n = max(n, int((torch.exp(-pixel_loss) < self.threshold).sum()))
        return min(n, m)

    def forward(self, logits: Tensor, target: Tensor) -> Tensor:
        valid, n_valid = self.check_inputs(logits, target)
        if n_valid == 0:
            return _zero(logits)
        labels = target[valid]  # (M,)
        pixel_loss = F.cross_entropy(logits, target, ignore_index=self.ignore_index, reduction="none")[valid]
        n_keep = self.num_kept(pixel_loss.detach())
        if n_keep == 0:
            return _zero(logits)
        kept = torch.topk(pixel_loss.detach(), n_keep, sorted=False).indices
        loss = pixel_loss[kept]
        if self.weight is None:
            return loss.mean()
        w = self.weight.to(loss.device, loss.dtype)[labels[kept]]
        return _safe_ratio((w * loss).sum(), w.sum())

    def extra_repr(self) -> str:
        return (
            f"{super().extra_repr()}, keep_ratio={self.keep_ratio}, threshold={self.threshold}, "
            f"min_kept={self.min_kept}"
        )


