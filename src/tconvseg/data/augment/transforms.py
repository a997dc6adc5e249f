"""Joint image/mask transforms built from ``torchvision.transforms.v2``.

Inputs are ``tv_tensors.Image`` (uint8, (3, H, W)) and ``tv_tensors.Mask`` (integer, (H, W)); v2 routes
each op by type, so masks are always resampled with nearest neighbour, padded with ``ignore_index``,
untouched by colour ops, and end as ``int64``. Outputs: image ``float32`` (3, h, w) normalised with
``mean``/``std``; mask ``int64`` (h, w).
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import torch
from torchvision import tv_tensors
from torchvision.transforms import v2
from torchvision.transforms.v2 import functional as F

from tconvseg.data.augment.class_crop import ClassUniformCrop
from tconvseg.data.datasets.base import Transforms
from tconvseg.nn.shapes import as_pair

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
# torch 2.14's uint8 antialiased resize hits an internal assert for 1x1 outputs, so sides stay >= 2.
_MIN_SIDE = 2


def _pair(value: Sequence[int] | int, key: str) -> tuple[int, int]:
    return as_pair(value, f"transform option {key}", minimum=1)


class Rescale(v2.Transform):
    """Resize by a factor drawn uniformly from ``scale`` (or a fixed factor), or to a fixed ``size``.

    Args:
        scale: factor, or ``(low, high)`` range of factors, applied to both sides (rounded, >= 2 px).
        size: fixed ``(height, width)``; exclusive with ``scale``.
        resize_masks: when False, masks pass through at their original resolution, so labels can be
            scored at full resolution while the network sees a smaller image.
    """

    def __init__(
        self,
        scale: float | Sequence[float] | None = None,
        size: Sequence[int] | None = None,
        resize_masks: bool = True,
    ) -> None:
        super().__init__()
        if (scale is None) == (size is None):
            raise ValueError(f"Rescale needs exactly one of scale={scale!r} and size={size!r}")
        self.size = _pair(size, "size") if size is not None else None
        if self.size is not None and min(self.size) < _MIN_SIDE:
            raise ValueError(f"transform option size={size!r} is invalid; expected sides >= {_MIN_SIDE}")
        low, high = (scale, scale) if isinstance(scale, (int, float)) or scale is None else tuple(scale)
        if scale is not None and not (0 < low <= high):  # type: ignore[operator]
            raise ValueError(f"transform option scale={scale!r} is invalid; expected a factor > 0 or [low, high]")
        self.scale_range = (low, high)
        self.resize_masks = resize_masks

    def make_params(self, flat_inputs: list[Any]) -> dict[str, Any]:
        if self.size is not None:
            return {"size": list(self.size)}
        height, width = v2.query_size(flat_inputs)
        low, high = self.scale_range
        factor = low if low == high else float(torch.empty(()).uniform_(low, high))
        return {"size": [max(_MIN_SIDE, round(height * factor)), max(_MIN_SIDE, round(width * factor))]}

    def transform(self, inpt: Any, params: dict[str, Any]) -> Any:
        if isinstance(inpt, tv_tensors.Mask) and not self.resize_masks:
            return inpt
        return F.resize(inpt, size=params["size"], antialias=True)


def _finish(mean: Sequence[float] | None, std: Sequence[float] | None, noise: float | None = None) -> list[v2.Transform]:
    steps: list[v2.Transform] = [
        v2.ToDtype({tv_tensors.Image: torch.float32, tv_tensors.Mask: torch.int64, "others": None}, scale=True)
    ]
    if noise is not None:  # on [0, 1] floats (GaussianNoise needs them), before normalisation
        steps.append(v2.GaussianNoise(mean=0.0, sigma=float(noise), clip=True))
    if mean is not None and std is not None:
        steps.append(v2.Normalize(mean=list(mean), std=list(std)))
    return steps


class Normalise:
    """``uint8`` images ``(..., 3, H, W)`` to the floats `eval_transforms` gives (scaled to [0, 1], then normalised
    with ``mean`` / ``std`` when both are given): the same kernels, pixel by pixel, so a tile normalised on its own
    equals the same pixels of the normalised whole image."""

    def __init__(self, mean: Sequence[float] | None = IMAGENET_MEAN, std: Sequence[float] | None = IMAGENET_STD) -> None:
        self.mean, self.std = (list(mean), list(std)) if mean is not None and std is not None else (None, None)

    def __call__(self, images: torch.Tensor) -> torch.Tensor:
        floats = F.to_dtype(images, torch.float32, scale=True)
        return floats if self.mean is None else F.normalize(floats, mean=self.mean, std=self.std)


def _resize(
    scale: float | None, size: Sequence[int] | None, random_scale: Sequence[float] | None
) -> list[v2.Transform]:
    """Base resize followed by random rescaling, fused into one resample when both are factors."""
    if scale is not None and size is not None:
        raise ValueError(f"transform options scale={scale!r} and size={size!r} are exclusive; give at most one")
    steps: list[v2.Transform] = []
    base = 1.0 if scale is None else float(scale)
    if base <= 0:
        raise ValueError(f"transform option scale={scale!r} is invalid; expected a resize factor > 0")
    if size is not None:
        steps.append(Rescale(size=size))
    if random_scale is not None:
        low, high = tuple(random_scale)
        steps.append(Rescale(scale=(base * low, base * high)))
    elif scale is not None and base != 1.0:
        steps.append(Rescale(scale=base))
    return steps


def train_transforms(
    *,
    ignore_index: int,
    scale: float | None = None,
    size: Sequence[int] | None = None,
    random_scale: Sequence[float] | None = None,
    crop_size: Sequence[int] | int | None = None,
    class_uniform_crop: float | None = None,
    hflip: float = 0.5,
    color_jitter: float | Sequence[float] | None = None,
    photometric: float | None = None,
    grayscale: float | None = None,
    noise: float | None = None,
    mean: Sequence[float] | None = IMAGENET_MEAN,
    std: Sequence[float] | None = IMAGENET_STD,
) -> v2.Compose:
    """Training pipeline: resize, random rescale, random crop (padded), flip, photometric changes, normalise.

    Args:
        ignore_index: mask value used to pad crops larger than the (rescaled) image.
        scale: base resize factor (e.g. 0.5 maps CamVid 360x480 to 180x240); exclusive with ``size``.
        size: fixed base ``(height, width)``.
        random_scale: ``(low, high)`` factor range applied on top of the base resize.
        crop_size: ``(height, width)`` (or int) of the random crop; pads with 0 (image) and
            ``ignore_index`` (mask) where the image is smaller. ``None`` = no crop.
        class_uniform_crop: probability that the crop is placed on a class drawn uniformly from those
            in the mask (`tconvseg.data.augment.class_crop.ClassUniformCrop`; thin classes are then cropped as
            often as large ones); needs ``crop_size``. ``None`` = plain random crops.
        hflip: probability of a horizontal flip (0 disables).
        color_jitter: brightness/contrast/saturation strength, or ``(b, c, s, hue)``; ``None`` = off.
        photometric: probability of each step of ``v2.RandomPhotometricDistort`` (SSD's: brightness,
            contrast, saturation, hue, channel permutation, each drawn on its own); ``None`` = off.
        grayscale: probability of ``v2.RandomGrayscale``; ``None`` = off.
        noise: standard deviation of additive Gaussian noise on the [0, 1] image (``v2.GaussianNoise``,
            clipped); ``None`` = off.
        mean: per-channel mean of the normalisation after scaling to [0, 1]; ``None`` skips it.
        std: per-channel standard deviation of the normalisation; ``None`` skips it.

    Returns:
        A ``v2.Compose`` called as ``t(image, mask)``.
    """
    steps = _resize(scale, size, random_scale)
    if crop_size is not None:
        crop = _pair(crop_size, "crop_size")
        fill = {tv_tensors.Image: 0, tv_tensors.Mask: ignore_index, "others": 0}
        if class_uniform_crop is None:
            steps.append(v2.RandomCrop(list(crop), pad_if_needed=True, fill=fill))
        else:
            steps.append(ClassUniformCrop(crop, class_uniform_crop, ignore_index, fill=fill))
    elif class_uniform_crop is not None:
        raise ValueError(
            f"transform option class_uniform_crop={class_uniform_crop!r} needs crop_size (it places the crop); "
            f"give data.train_transforms.crop_size=[H,W] or leave class_uniform_crop null"
        )
    if not 0.0 <= hflip <= 1.0:
        raise ValueError(f"transform option hflip={hflip!r} is invalid; expected a probability in [0, 1]")
    if hflip > 0:
        steps.append(v2.RandomHorizontalFlip(p=hflip))
    if color_jitter is not None:
        jitter = (color_jitter,) * 3 + (0.0,) if isinstance(color_jitter, (int, float)) else tuple(color_jitter)
        if len(jitter) != 4:
            raise ValueError(
                f"transform option color_jitter={color_jitter!r} is invalid; expected a strength or "
                f"[brightness, contrast, saturation, hue]"
            )
        b, c, s, h = jitter
        steps.append(v2.ColorJitter(brightness=b, contrast=c, saturation=s, hue=h))
    for key, value in (("photometric", photometric), ("grayscale", grayscale)):
        if value is not None and not (isinstance(value, (int, float)) and 0.0 <= value <= 1.0):
            raise ValueError(f"transform option {key}={value!r} is invalid; expected a probability in [0, 1] or null")
    if photometric:
        steps.append(v2.RandomPhotometricDistort(p=float(photometric)))
    if grayscale:
        steps.append(v2.RandomGrayscale(p=float(grayscale)))
    if noise is not None and not (isinstance(noise, (int, float)) and not isinstance(noise, bool) and noise >= 0):
        raise ValueError(f"transform option noise={noise!r} is invalid; expected a standard deviation >= 0 (on [0, 1] pixels) or null")
    return v2.Compose(steps + _finish(mean, std, noise or None))


def eval_transforms(
    *,
    scale: float | None = None,
    size: Sequence[int] | None = None,
    resize_mask: bool = True,
    mean: Sequence[float] | None = IMAGENET_MEAN,
    std: Sequence[float] | None = IMAGENET_STD,
) -> v2.Compose:
    """Deterministic evaluation pipeline: optional resize, then normalise.

    Args:
        scale: as in `train_transforms` (no randomness here).
        size: as in `train_transforms`.
        resize_mask: when False only the image is resized and the mask keeps the label resolution;
            the model's logits must then be upsampled to the mask size before scoring. Only batchable
            when all labels share one size (CamVid), otherwise keep True.
        mean: as in `train_transforms`.
        std: as in `train_transforms`.
    """
    if scale is not None and size is not None:
        raise ValueError(f"transform options scale={scale!r} and size={size!r} are exclusive; give at most one")
    steps: list[v2.Transform] = []
    if size is not None:
        steps.append(Rescale(size=size, resize_masks=resize_mask))
    elif scale is not None and scale != 1.0:
        steps.append(Rescale(scale=scale, resize_masks=resize_mask))
    return v2.Compose(steps + _finish(mean, std))


def transforms_from_options(
    spec: Mapping[str, Any] | Transforms | None, builder: Callable[..., Transforms], **fixed: Any
) -> Transforms:
    """``spec`` as is when it is a transform, else ``builder(**spec, **fixed)`` with checked option names."""
    if spec is not None and not isinstance(spec, Mapping):
        return spec
    options = dict(spec or {})
    valid = set(inspect.signature(builder).parameters) - set(fixed)
    unknown = sorted(set(options) - valid)
    if unknown:
        raise ValueError(f"unknown {builder.__name__} option(s) {unknown}; expected some of {sorted(valid)}")
    return builder(**options, **fixed)
