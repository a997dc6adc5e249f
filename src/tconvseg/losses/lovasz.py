"""Lovász-softmax (Berman et al. 2018): a convex surrogate of 1 - IoU."""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor

from .base import ClassChoice, SegmentationLoss, WeightLike, _check_classes, _class_mask, _zero


def _lovasz_grad(fg_sorted: Tensor) -> Tensor:
    """Gradient of the Lovász extension of the Jaccard loss w.r.t. sorted errors (Berman et al., Alg. 1).

    ``fg_sorted``: ``(P,)`` bool, foreground flags in order of decreasing error. Entry ``i`` is
    ``J(i+1) - J(i)``, ``J(i)`` the Jaccard loss when the ``i`` largest-error pixels are wrong.
    Counts are integers and the differences are taken in float64: in float32 ``1 - I/U`` loses
    the small steps ``~1/U`` once ``U`` reaches millions of pixels.
    """
    fg = fg_sorted.to(torch.int64)
    gts = fg.sum()
    intersection = gts - fg.cumsum(0)
    union = gts + (1 - fg).cumsum(0)  # >= 1: the first pixel is in the foreground or in the errors
    jaccard = 1.0 - intersection.to(torch.float64) / union.to(torch.float64)
    return torch.cat([jaccard[:1], jaccard[1:] - jaccard[:-1]])


def _lovasz_flat(probs: Tensor, labels: Tensor, classes: str | tuple[int, ...]) -> Tensor:
    """Lovász-softmax of ``probs (P, K)`` against ``labels (P,)`` (``P >= 1``): mean over the chosen classes.

    Classes are looped over rather than batched: one ``(P,)`` sort at a time keeps the peak memory
    ``K`` times lower than sorting ``(P, K)`` at once.
    """
    k = probs.shape[1]
    present = torch.bincount(labels, minlength=k) > 0
    mask = _class_mask(classes, present)
    losses = []
    for c in torch.nonzero(mask).flatten().tolist():
        fg = labels == c
        errors = (fg.to(probs.dtype) - probs[:, c]).abs()
        errors_sorted, perm = torch.sort(errors, descending=True)
        losses.append(torch.dot(errors_sorted, _lovasz_grad(fg[perm]).to(errors_sorted.dtype)))
    return torch.stack(losses).mean()


class LovaszSoftmax(SegmentationLoss):
    """Lovász-softmax loss (Berman, Triki & Blaschko, CVPR 2018), a convex surrogate of ``1 - IoU``.

    Softmax probabilities of the valid pixels (ignored pixels are removed first); for each class
    ``c`` the errors ``|[t_i = c] - p_i(c)|`` are sorted and dotted with the gradient of the
    Lovász extension of the Jaccard loss; the result is the plain mean over classes.

    ``weight`` is accepted for the common calling convention and checked for length, then
    **ignored**: the loss is already a mean over classes of per-class IoU surrogates (balanced
    like mIoU), and frequency weights, made to balance cross-entropy's per-pixel mean, would
    count class balance twice.

    Args:
        weight: checked, unused (see above).
        ignore_index: see `SegmentationLoss`.
        per_image: compute the loss per image and average over the images that have valid pixels
            (the reference implementation also counts images with none, as 0), or over the whole
            batch at once (default, as in the reference).
        classes: ``"present"`` (classes present in the target of the image / batch, default),
            ``"all"`` (absent classes too, penalising their false positives), or a list of class
            indices.
    Computed in float32 whatever the logits' dtype.
    """

    def __init__(
        self,
        weight: WeightLike = None,
        ignore_index: int = -100,
        *,
        per_image: bool = False,
        classes: ClassChoice | Sequence[int] = "present",
    ) -> None:
        super().__init__(weight, ignore_index)
        self.per_image = bool(per_image)
        self.classes = _check_classes(classes, allow_list=True)

    def forward(self, logits: Tensor, target: Tensor) -> Tensor:
        valid, n_valid = self.check_inputs(logits, target)
        if n_valid == 0:
            return _zero(logits)
        probs = logits.float().softmax(dim=1).permute(0, 2, 3, 1)  # (N, H, W, K)
        if not self.per_image:
            return _lovasz_flat(probs[valid], target[valid], self.classes)
        per_image = [
            _lovasz_flat(probs[i][valid[i]], target[i][valid[i]], self.classes)
            for i in range(logits.shape[0])
            if valid[i].any()
        ]
        return torch.stack(per_image).mean()

    def extra_repr(self) -> str:
        return f"{super().extra_repr()} (unused), per_image={self.per_image}, classes={self.classes!r}"


