"""The loss base class, weight handling and class selection shared by every loss."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Literal

import torch
from torch import Tensor, nn

WeightLike = Tensor | Sequence[float] | None
#: What `CombinedLoss` accepts for each part: a built loss, or a factory called with
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


