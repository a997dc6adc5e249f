"""A weighted sum of losses that share the weight / ignore_index convention."""

from __future__ import annotations

from collections.abc import Sequence

from torch import Tensor, nn

from .base import LossPart, SegmentationLoss, WeightLike


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
