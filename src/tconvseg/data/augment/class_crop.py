"""A random crop that, some of the time, is placed on a class drawn uniformly from those in the mask.

Where the crop is small beside the frame, a plain random crop of a street scene mostly holds road, sky
and building, and thin, rare classes (pole, sign, bicyclist) often fall outside it (at CamVid's 180x240
crops of half-size frames they rarely do: docs/results.md, amendment 17). Class-uniform sampling (Zhu et al., "Improving Semantic
Segmentation via Video Propagation and Label Relaxation", CVPR 2019: NVIDIA's ``class_uniform_pct``)
centres a share of the crops on a class drawn with equal chance among the classes present, so each
present class is the target of a crop as often as any other. This is the per-item form: the image is
the one the sampler gave; only the crop's place changes.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
from torchvision import tv_tensors
from torchvision.transforms import v2


class ClassUniformCrop(v2.RandomCrop):
    """``v2.RandomCrop(size, pad_if_needed=True, fill=fill)`` whose place is, with probability ``p``,
    chosen to contain a pixel of a class drawn uniformly among the non-void classes of the mask.

    With probability ``1 - p`` (or when the mask holds only void) the crop is ``v2.RandomCrop``'s. Otherwise a
    class ``c`` is drawn uniformly from the mask's classes other than ``ignore_index``, a pixel of ``c``
    uniformly from its pixels, and the crop's top-left corner uniformly from the places where the crop
    contains that pixel (within the padded image). Padding is as in ``v2.RandomCrop`` (void in the mask).

    Args:
        size: ``(height, width)`` of the crop.
        p: probability of a class-placed crop, in ``[0, 1]``.
        ignore_index: the mask's void value (never drawn as a class; also the mask's padding in ``fill``).
        fill: as in ``v2.RandomCrop``.

    Raises:
        ValueError: ``p`` outside ``[0, 1]`` (names ``data.train_transforms.class_uniform_crop``); on call,
            an input without a ``tv_tensors.Mask`` (the class is read from it).
    """

    def __init__(self, size: Sequence[int], p: float, ignore_index: int, fill: Any = 0) -> None:
        if isinstance(p, bool) or not isinstance(p, (int, float)) or not 0.0 <= p <= 1.0:
            raise ValueError(
                f"transform option class_uniform_crop={p!r} is invalid; expected the probability, in [0, 1], "
                f"of a crop placed on a class drawn uniformly from those in the mask (or null for none)"
            )
        super().__init__(list(size), pad_if_needed=True, fill=fill)
        self.p = float(p)
        self.ignore_index = ignore_index

    def make_params(self, flat_inputs: list[Any]) -> dict[str, Any]:
        params = super().make_params(flat_inputs)
        if not self.p or float(torch.rand(())) >= self.p:
            return params
        masks = [x for x in flat_inputs if isinstance(x, tv_tensors.Mask)]
        if not masks:
            raise ValueError(
                "data.train_transforms.class_uniform_crop needs the mask among the transform's inputs "
                "(a tv_tensors.Mask) to read the classes from; none was given"
            )
        mask = masks[0].reshape(masks[0].shape[-2:])
        classes = [c for c in mask.unique().tolist() if c != self.ignore_index]
        if not classes:
            return params
        target = classes[int(torch.randint(len(classes), ()))]
        rows, cols = (mask == target).nonzero(as_tuple=True)
        pick = int(torch.randint(rows.numel(), ()))
        pad_left, pad_top, pad_right, pad_bottom = params["padding"]
        y, x = int(rows[pick]) + pad_top, int(cols[pick]) + pad_left
        padded_h = mask.shape[0] + pad_top + pad_bottom
        padded_w = mask.shape[1] + pad_left + pad_right
        height, width = params["height"], params["width"]
        params["top"] = _offset(y, height, padded_h)
        params["left"] = _offset(x, width, padded_w)
        params["needs_crop"] = padded_h > height or padded_w > width
        return params


def _offset(position: int, crop: int, padded: int) -> int:
    """A uniform offset in ``[0, padded - crop]`` such that ``[offset, offset + crop)`` holds ``position``."""
    low, high = max(0, position - crop + 1), min(position, padded - crop)
    return low + int(torch.randint(high - low + 1, ()))
