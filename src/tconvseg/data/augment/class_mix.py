"""ClassMix of a training batch: ``data.class_mix``.

Olsson et al., "ClassMix: Segmentation-Based Data Augmentation for Semi-Supervised Learning" (WACV 2021),
used here on labelled batches: an item is overlaid with the pixels of about half of the classes present
in another item of the same batch, image and mask alike. Objects then appear on streets and next to
neighbours they were not filmed with, so a model can rely less on the context of the drives it trains on.

The mask of a mix is cut along the partner's labels, so the pasted pixels keep their true class; void
pixels of the partner are never pasted (what lies under them stays). Runs after the batch's own
augmentation (loader or device), in training only; items must share one size (a crop or a fixed scale).
"""

from __future__ import annotations

import torch


def check_class_mix(probability: float | None) -> float:
    """``data.class_mix`` as a probability in ``[0, 1]`` (``None`` is 0); anything else is refused by name."""
    if probability is None:
        return 0.0
    if isinstance(probability, bool) or not isinstance(probability, (int, float)) or not 0 <= probability <= 1:
        raise ValueError(
            f"data.class_mix={probability!r} is invalid; expected the probability in [0, 1] that a training item is mixed "
            "with the classes of another item of its batch (null or 0: off)"
        )
    return float(probability)


def class_mix(
    images: torch.Tensor,
    masks: torch.Tensor,
    probability: float,
    num_classes: int,
    generator: torch.Generator | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Mix each item, with chance ``probability``, with half of the classes of another item of the batch.

    For item ``i`` a partner ``j != i`` is drawn uniformly; of the classes present in ``masks[j]``
    (values ``0..num_classes-1``; anything else is void) ``ceil(k / 2)`` of the ``k`` are chosen at random,
    and the pixels of ``j`` with those labels replace item ``i``'s, in the image and the mask.

    Args:
        images: ``(N, C, H, W)`` floating point, already normalised or not (pixels are copied, not blended).
        masks: ``(N, H, W)`` integer labels, void = any value outside ``0..num_classes-1``.
        probability: chance that an item is mixed; 0 returns the inputs unchanged.
        num_classes: number of real classes.
        generator: random source (default: torch's global one, which ``seed_everything`` seeds).

    Returns:
        ``(images, masks)``: new tensors of the same shapes, dtypes and device; batches of one item are returned as they are.

    Raises:
        ValueError: images and masks whose batch or spatial sizes differ.
    """
    if images.ndim != 4 or masks.ndim != 3 or images.shape[0] != masks.shape[0] or images.shape[-2:] != masks.shape[-2:]:
        raise ValueError(
            f"class_mix needs images (N, C, H, W) and masks (N, H, W) of one size; got {tuple(images.shape)} and {tuple(masks.shape)}"
        )
    n = images.shape[0]
    if n < 2 or probability <= 0:
        return images, masks
    device = images.device
    source = generator.device if generator is not None else device  # draws where the generator lives

    def rand(*size: int) -> torch.Tensor:
        return torch.rand(*size, generator=generator, device=source).to(device)

    shift = torch.randint(1, n, (n,), generator=generator, device=source).to(device)
    partner = (torch.arange(n, device=device) + shift) % n
    mixed = rand(n) < probability

    partner_masks = masks[partner]
    labels = torch.where((partner_masks >= 0) & (partner_masks < num_classes), partner_masks, num_classes).long()
    present = torch.zeros(n, num_classes + 1, dtype=torch.bool, device=device)
    present.scatter_(1, labels.flatten(1), True)
    present = present[:, :num_classes]
    # ceil(k / 2) of the k present classes: rank them by a random key (absent classes last) and keep the first ones.
    keys = torch.where(present, rand(n, num_classes), torch.full((n, num_classes), 2.0, device=device))
    rank = keys.argsort(dim=1).argsort(dim=1)
    chosen = present & (rank < (present.sum(dim=1, keepdim=True) + 1) // 2)
    chosen = torch.cat([chosen, torch.zeros(n, 1, dtype=torch.bool, device=device)], dim=1)  # void is never pasted
    paste = chosen.gather(1, labels.flatten(1)).view_as(masks) & mixed.view(n, 1, 1)

    images = torch.where(paste.unsqueeze(1), images[partner], images)
    masks = torch.where(paste, partner_masks, masks)
    return images, masks
