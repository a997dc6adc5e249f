"""Soft Dice over classes."""

from __future__ import annotations

import torch.nn.functional as F
from torch import Tensor

from .base import ClassChoice, SegmentationLoss, WeightLike, _check_classes, _class_mask, _safe_ratio, _zero


class DiceLoss(SegmentationLoss):
    """Soft Dice loss over classes: ``1 - weighted mean_c D_c`` on the softmax probabilities.

    Per class, over all valid pixels of the batch (ignored pixels removed):
    ``D_c = (2 * sum_i p_i(c) g_i(c) + smooth) / (sum_i p_i(c) + sum_i g_i(c) + smooth)``, with
    ``g`` the one-hot target. The mean over the counted classes uses ``weight[c]`` when given
    (``sum_c w_c (1 - D_c) / sum_c w_c``), else equal weights. Nothing counted (no valid pixel,
    or counted classes all of weight 0) gives 0.

    Args:
        weight: per-class weights of the mean over classes, or ``None``.
        ignore_index: see `SegmentationLoss`.
        smooth: added to numerator and denominator, ``>= 0``; keeps absent classes finite and
            softens the loss of small classes.
        classes: ``"present"`` (classes present in the batch's target, default) or ``"all"``
            (absent ones too; with ``smooth > 0`` they push their probabilities towards 0).
    Computed in float32 whatever the logits' dtype.
    """

    def __init__(
        self,
        weight: WeightLike = None,
        ignore_index: int = -100,
        *,
        smooth: float = 1.0,
        classes: ClassChoice = "present",
    ) -> None:
        super().__init__(weight, ignore_index)
        if smooth < 0:
            raise ValueError(f"smooth must be >= 0, got {smooth}")
        self.smooth = float(smooth)
        self.classes = _check_classes(classes, allow_list=False)

    def forward(self, logits: Tensor, target: Tensor) -> Tensor:
        valid, n_valid = self.check_inputs(logits, target)
        if n_valid == 0:
            return _zero(logits)
        k = logits.shape[1]
        probs = logits.float().softmax(dim=1).permute(0, 2, 3, 1)[valid]  # (M, K)
        onehot = F.one_hot(target[valid], k).to(probs.dtype)  # (M, K)
        intersection = (probs * onehot).sum(0)
        counts = onehot.sum(0)
        dice = (2.0 * intersection + self.smooth) / (probs.sum(0) + counts + self.smooth)
        counted = _class_mask(self.classes, counts > 0).to(probs.dtype)
        class_weight = counted if self.weight is None else counted * self.weight.to(probs.device, probs.dtype)
        return _safe_ratio((class_weight * (1.0 - dice)).sum(), class_weight.sum())

    def extra_repr(self) -> str:
        return f"{super().extra_repr()}, smooth={self.smooth}, classes={self.classes!r}"


