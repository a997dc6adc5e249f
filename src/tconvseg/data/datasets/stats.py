"""Class statistics of label maps: pixel counts and loss weights."""

from __future__ import annotations

import warnings
from collections.abc import Iterable, Sequence

import torch

from tconvseg.data.datasets.decode import label_histogram

COMPUTED_WEIGHTINGS = ("median_frequency", "median_frequency_sqrt")
"""The weight methods computed from the train masks (also the computed values of ``model.class_weighting``)."""
WEIGHT_METHODS = (*COMPUTED_WEIGHTINGS, "uniform")
"""Names of `SegmentationDataModule.class_weights` methods."""


def class_pixel_counts(masks: Iterable[torch.Tensor], num_classes: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-class pixel counts over ``masks`` (each an integer ``(H, W)`` tensor).

    Returns:
        ``(pixels, image_pixels)``, both ``int64`` of shape ``(num_classes,)``: ``pixels[c]`` counts the
        pixels labelled ``c``; ``image_pixels[c]`` sums the total pixel count (every pixel, the ignore
        value included) of the masks in which ``c`` appears. Values >= ``num_classes`` (the ignore
        value) are not counted as a class.
    """
    pixels = torch.zeros(num_classes, dtype=torch.int64)
    image_pixels = torch.zeros(num_classes, dtype=torch.int64)
    for mask in masks:
        if mask.dtype == torch.uint8:
            counts = torch.from_numpy(label_histogram(mask)[:num_classes]).to(torch.int64)
        else:
            flat = mask.flatten().to(torch.int64)
            counts = torch.bincount(flat[(flat >= 0) & (flat < num_classes)], minlength=num_classes)
        pixels += counts
        image_pixels += (counts > 0).to(torch.int64) * mask.numel()
    return pixels, image_pixels


def median_frequency_weights(
    masks: Iterable[torch.Tensor], num_classes: int, class_names: Sequence[str] | None = None
) -> torch.Tensor:
    """Median-frequency balancing (Eigen & Fergus, 2015) as a ``float32`` tensor of shape ``(num_classes,)``.

    ``freq(c) = pixels of c / total pixels of the masks in which c appears`` and
    ``w(c) = median(freq) / freq(c)``, the median taken over the classes that appear. Classes that never
    appear get weight 0 (they cannot contribute to the loss anyway) and trigger a warning.
    """
    pixels, image_pixels = class_pixel_counts(masks, num_classes)
    seen = pixels > 0
    weights = torch.zeros(num_classes, dtype=torch.float64)
    if not seen.any():
        raise ValueError("cannot compute class weights: the masks contain no pixel of any class")
    freq = pixels[seen].to(torch.float64) / image_pixels[seen].to(torch.float64)
    # torch.median returns the lower middle value for even counts; the midpoint is the usual median.
    weights[seen] = freq.quantile(0.5) / freq
    if not seen.all():
        missing = [class_names[c] if class_names else str(c) for c in torch.nonzero(~seen).flatten().tolist()]
        warnings.warn(f"classes never seen in the training masks get weight 0: {missing}", stacklevel=2)
    return weights.to(torch.float32)


def class_weights_by(method: str, masks: Iterable[torch.Tensor], num_classes: int, class_names: Sequence[str] | None = None) -> torch.Tensor:
    """Loss weights ``(num_classes,)`` float32 by one of `WEIGHT_METHODS` (``masks`` unused for ``uniform``).

    ``median_frequency``: `median_frequency_weights`; ``median_frequency_sqrt``: their square roots (the same
    order, half the spread on a log scale: thin classes still weigh more, large ones are not starved);
    ``uniform``: ones.
    """
    if method not in WEIGHT_METHODS:
        raise ValueError(f"unknown class weight method {method!r}; expected one of {WEIGHT_METHODS}")
    if method == "uniform":
        return torch.ones(num_classes)
    weights = median_frequency_weights(masks, num_classes, class_names)
    return weights.sqrt() if method == "median_frequency_sqrt" else weights
