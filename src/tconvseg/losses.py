"""Segmentation losses with one calling convention (pure torch).

Every loss is an ``nn.Module`` built as ``Loss(weight=None, ignore_index=-100, *, **options)`` and
called as ``loss(logits, target)``:

- ``logits``: ``(N, K, H, W)`` floating point, unnormalised class scores;
- ``target``: ``(N, H, W)`` int64, values in ``[0, K)`` or ``ignore_index``;
- result: a scalar tensor (0-d) attached to the graph of ``logits``.

The shared contract (enforced by :class:`SegmentationLoss`):

- ``weight`` is ``None`` or ``K`` non-negative per-class weights. It is *copied* into a
  non-persistent buffer, so it moves with ``.to(device)`` but is not part of ``state_dict()``: a
  loss is configuration, and a checkpoint must load whatever loss the evaluating config picks.
  Each loss documents what it does with the weights (:class:`LovaszSoftmax` ignores them).
  :meth:`SegmentationLoss.set_weight` replaces them later (e.g. once they are computed from data).
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

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from typing import Literal

import torch
import torch.nn.functional as F
from torch import Tensor, nn

__all__ = [
    "CombinedLoss",
    "CrossEntropy",
    "DiceLoss",
    "LovaszSoftmax",
    "OhemCrossEntropy",
    "SegmentationLoss",
]

WeightLike = Tensor | Sequence[float] | None
#: What :class:`CombinedLoss` accepts for each part: a built loss, or a factory called with
#: ``weight=..., ignore_index=...`` (a class, or a Hydra ``_partial_``).
LossPart = nn.Module | Callable[..., nn.Module]


def _as_weight(weight: WeightLike) -> Tensor | None:
    """``None`` or a fresh 1-D float32 tensor of finite non-negative weights (a copy: never aliased).

    A NaN weight would otherwise vanish silently: "weight sum > 0" is false for NaN, and the loss
    would read 0 instead of failing.
    """
    if weight is None:
        return None
    w = torch.as_tensor(weight).detach().to(dtype=torch.float32).clone()
    if w.dim() != 1 or w.numel() == 0:
        raise ValueError(f"weight must be a non-empty 1-D sequence of per-class weights, got shape {tuple(w.shape)}")
    # Non-negative weights make "sum of weights == 0" mean "nothing to average over", which is
    # what lets every loss return 0 there instead of NaN.
    if bool((w < 0).any()) or not bool(torch.isfinite(w).all()):
        raise ValueError(f"weight must be finite and non-negative, got {w.tolist()}")
    return w


def _zero(logits: Tensor) -> Tensor:
    """A 0 that is still attached to the graph of ``logits`` (so ``backward()`` works and gives zeros)."""
    return logits.sum() * 0.0


def _safe_ratio(num: Tensor, den: Tensor) -> Tensor:
    """``num / den``, or 0 where ``den == 0`` (then ``num`` is 0 too: a weighted sum with zero weights).

    The clamp keeps the unselected branch finite, so its gradient is 0 rather than NaN.
    """
    return torch.where(den > 0, num / den.clamp_min(torch.finfo(den.dtype).tiny), torch.zeros_like(num))


class SegmentationLoss(nn.Module):
    """Base class: holds ``weight`` (buffer) and ``ignore_index`` and checks inputs.

    Subclasses implement ``forward(logits (N, K, H, W), target (N, H, W)) -> scalar`` and start it
    with ``valid, n_valid = self.check_inputs(logits, target)``.

    Args:
        weight: ``None`` or ``K`` non-negative per-class weights (copied; see the module docstring).
        ignore_index: target value whose pixels are left out entirely. It may lie inside
            ``[0, K)`` (e.g. to drop a background class).
    """

    weight: Tensor | None

    def __init__(self, weight: WeightLike = None, ignore_index: int = -100) -> None:
        super().__init__()
        self.ignore_index = int(ignore_index)
        # Non-persistent: see the module docstring (checkpoints must not depend on the loss chosen).
        self.register_buffer("weight", _as_weight(weight), persistent=False)

    def set_weight(self, weight: WeightLike) -> None:
        """Replace the class weights (copied, kept on the device of the current buffer if any)."""
        new = _as_weight(weight)
        if new is not None and self.weight is not None:
            new = new.to(self.weight.device)
        self.weight = new  # assigning to a registered buffer name keeps it a (non-persistent) buffer

    def check_inputs(self, logits: Tensor, target: Tensor) -> tuple[Tensor, int]:
        """Validate shapes, dtypes and label values.

        Returns:
            ``valid``: ``(N, H, W)`` bool, ``target != ignore_index``; and the number of valid pixels.

        Raises:
            ValueError: see the module docstring for the list.
        """
        if logits.dim() != 4:
            raise ValueError(f"logits must be 4-D (N, K, H, W), got shape {tuple(logits.shape)}")
        if not logits.is_floating_point():
            raise ValueError(f"logits must be floating point, got dtype {logits.dtype}")
        n, k, h, w = logits.shape
        if target.shape != (n, h, w):
            raise ValueError(
                f"target must have shape (N, H, W) = {(n, h, w)} to match logits {tuple(logits.shape)}, "
                f"got {tuple(target.shape)}"
            )
        if target.dtype != torch.int64:
            raise ValueError(f"target must be int64 class indices, got dtype {target.dtype}")
        if self.weight is not None and self.weight.numel() != k:
            raise ValueError(f"weight has {self.weight.numel()} entries, expected one per class: K={k}")
        valid = target != self.ignore_index
        bad = valid & ((target < 0) | (target >= k))
        n_bad, n_valid = torch.stack([bad.sum(), valid.sum()]).tolist()  # one read-back for both
        if n_bad:
            found = torch.unique(target[bad])[:10].tolist()
            raise ValueError(
                f"target values must be in [0, {k}) or ignore_index={self.ignore_index}; "
                f"found {n_bad} pixels with values such as {found}"
            )
        return valid, int(n_valid)

    def extra_repr(self) -> str:
        return f"ignore_index={self.ignore_index}, weighted={self.weight is not None}"


class CrossEntropy(SegmentationLoss):
    """Pixel-wise cross-entropy, exactly ``F.cross_entropy(logits, target, weight, ignore_index, label_smoothing)``.

    With weights ``w`` the value is ``sum_i w[t_i] * l_i / sum_i w[t_i]`` over valid pixels ``i``
    (torch's weighted mean), ``l_i`` the (smoothed) cross-entropy of pixel ``i``. The one
    difference from ``F.cross_entropy``: when that denominator is 0 (no valid pixel, or only
    pixels of weight-0 classes, which median-frequency weights give to classes unseen in
    training) the result is 0 instead of NaN.

    Args:
        weight: per-class weights as above, or ``None`` (all 1).
        ignore_index: see :class:`SegmentationLoss`.
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
    weights). With ``keep_ratio=1`` this equals :class:`CrossEntropy` (no label smoothing).
    Nothing kept, or only weight-0 pixels kept, gives 0.

    Args:
        weight: per-class weights, or ``None``.
        ignore_index: see :class:`SegmentationLoss`.
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


ClassChoice = Literal["present", "all"]


def _class_mask(classes: str | Sequence[int], present: Tensor) -> Tensor:
    """Which classes count, ``(K,)`` bool: ``present`` ones, ``all``, or a given list."""
    k = present.numel()
    if classes == "present":
        return present
    if classes == "all":
        return torch.ones_like(present)
    chosen = list(classes)
    out_of_range = [c for c in chosen if not 0 <= c < k]
    if out_of_range:
        raise ValueError(f"classes must be indices in [0, {k}), got {out_of_range}")
    mask = torch.zeros_like(present)
    mask[chosen] = True
    return mask


def _check_classes(classes: str | Sequence[int], allow_list: bool) -> str | tuple[int, ...]:
    expected = "'present' or 'all' or a list of class indices" if allow_list else "'present' or 'all'"
    if isinstance(classes, str):
        if classes not in ("present", "all"):
            raise ValueError(f"classes must be {expected}, got {classes!r}")
        return classes
    if not allow_list:
        raise ValueError(f"classes must be {expected}, got {classes!r}")
    chosen = tuple(int(c) for c in classes)
    if not chosen:
        raise ValueError("classes must not be an empty list")
    return chosen


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
        ignore_index: see :class:`SegmentationLoss`.
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


class DiceLoss(SegmentationLoss):
    """Soft Dice loss over classes: ``1 - weighted mean_c D_c`` on the softmax probabilities.

    Per class, over all valid pixels of the batch (ignored pixels removed):
    ``D_c = (2 * sum_i p_i(c) g_i(c) + smooth) / (sum_i p_i(c) + sum_i g_i(c) + smooth)``, with
    ``g`` the one-hot target. The mean over the counted classes uses ``weight[c]`` when given
    (``sum_c w_c (1 - D_c) / sum_c w_c``), else equal weights. Nothing counted (no valid pixel,
    or counted classes all of weight 0) gives 0.

    Args:
        weight: per-class weights of the mean over classes, or ``None``.
        ignore_index: see :class:`SegmentationLoss`.
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


class CombinedLoss(SegmentationLoss):
    """A weighted sum of losses, ``sum_j factors[j] * losses[j](logits, target)``, e.g. CE + 0.5 * Lovász.

    Each part is either a factory (a loss class or a Hydra ``_partial_``), called here with this
    loss's ``weight`` and ``ignore_index``, so every part sees the same class weights and ignore
    index and treats the weights its own way; or an already built ``nn.Module``, used as it is
    (its ``ignore_index``, when it has one, must equal this one).

    Args:
        weight: passed to every factory part (the combination itself does not use it).
        ignore_index: passed to every factory part.
        losses: the parts, at least one.
        factors: one multiplier per part (default all 1).
    """

    def __init__(
        self,
        weight: WeightLike = None,
        ignore_index: int = -100,
        *,
        losses: Sequence[LossPart],
        factors: Sequence[float] | None = None,
    ) -> None:
        # The parts own the weights; holding a copy here too would only have to be kept in step.
        super().__init__(None, ignore_index)
        parts = list(losses)
        if not parts:
            raise ValueError("CombinedLoss needs at least one loss, got none")
        factor_list = [1.0] * len(parts) if factors is None else [float(f) for f in factors]
        if len(factor_list) != len(parts):
            raise ValueError(f"got {len(factor_list)} factors for {len(parts)} losses; expected one factor per loss")
        built = []
        for part in parts:
            if isinstance(part, nn.Module):
                part_ignore = getattr(part, "ignore_index", self.ignore_index)
                if part_ignore != self.ignore_index:
                    raise ValueError(
                        f"a built part has ignore_index={part_ignore}, expected the combination's {self.ignore_index}; "
                        "pass a factory (class or partial) to have it filled in"
                    )
                built.append(part)
            elif callable(part):
                module = part(weight=weight, ignore_index=self.ignore_index)
                if not isinstance(module, nn.Module):
                    raise TypeError(f"loss factory {part!r} returned {type(module).__name__}, expected an nn.Module")
                built.append(module)
            else:
                raise TypeError(f"losses must be nn.Modules or factories, got {type(part).__name__}")
        self.losses = nn.ModuleList(built)
        self.factors = factor_list

    def set_weight(self, weight: WeightLike) -> None:
        """Replace the class weights of every part (each must have ``set_weight``)."""
        for part in self.losses:
            if not hasattr(part, "set_weight"):
                raise TypeError(f"part {type(part).__name__} has no set_weight(); cannot pass new weights to it")
        for part in self.losses:
            part.set_weight(weight)

    def forward(self, logits: Tensor, target: Tensor) -> Tensor:
        total = self.factors[0] * self.losses[0](logits, target)
        for factor, loss in zip(self.factors[1:], self.losses[1:], strict=True):
            total = total + factor * loss(logits, target)
        return total

    def extra_repr(self) -> str:
        return f"ignore_index={self.ignore_index}, factors={self.factors}"
