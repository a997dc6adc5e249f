"""Training augmentation of a whole batch where the batch is (GPU, or CPU): ``data.augment_on=device``.

The per-item pipeline (`tconvseg.data.augment.transforms.train_transforms`) augments one image at a
time in loader workers. `BatchAugment` does the same random scale + crop + flip for a batch
with **per-sample** parameters in one ``affine_grid`` + ``grid_sample`` (bilinear for images, nearest
for masks), then colour jitter, grayscale, noise and normalisation as tensor arithmetic. No host sync,
static output shapes (the crop size), so it suits CUDA graphs and ``torch.compile``.

Masks are resampled as ``label + 1`` with zero padding and shifted back, so every pixel outside the
image becomes ``-1`` and then ``ignore_index``: padding is void, never class 0.

Parameters follow the per-item pipeline's distributions: factor ``scale * U(low, high)`` (rounded
sizes), ``v2.RandomCrop(pad_if_needed=True)``'s offsets (a rescaled image smaller than the crop lands whole at
a random place inside it), flip with probability ``hflip``, brightness / contrast / saturation factors
in ``[1 - s, 1 + s]``. Differences, by design: colour jitter applies its three steps in a fixed order
(torchvision permutes them), and downscaling is antialiased once for the whole batch (to the largest
factor a sample can draw), the rest of the per-sample factor by bilinear sampling.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F

from tconvseg.data.augment.transforms import IMAGENET_MEAN, IMAGENET_STD
from tconvseg.nn.shapes import as_pair

#: Options of ``data.train_transforms`` that `BatchAugment` implements.
SUPPORTED = ("scale", "random_scale", "crop_size", "hflip", "color_jitter", "grayscale", "noise", "mean", "std")


class BatchAugment:
    """Random scale + crop + flip + photometric changes + normalisation of a batch, per-sample parameters.

    Args:
        ignore_index: mask value of void (crop padding becomes it).
        scale: base resize factor (CamVid 360x480 at 0.5 -> 180x240); ``None``: 1.
        random_scale: ``(low, high)`` factor range on top of ``scale``; needs ``crop_size`` (items of
            different sizes cannot share a batch).
        crop_size: ``(height, width)`` of the output; ``None``: the base-scaled input size.
        hflip: probability of a horizontal flip.
        color_jitter: brightness / contrast / saturation strength (or ``[b, c, s]``, or ``[b, c, s, 0]``).
        grayscale: probability of a grayscale image.
        noise: standard deviation of Gaussian pixel noise on [0, 1] pixels (clipped).
        mean, std: normalisation; ``None`` skips it.

    Raises:
        ValueError: an option outside its range, hue jitter (not implemented here), ``random_scale``
            without ``crop_size``; each names the ``data.train_transforms`` key.
    """

    def __init__(
        self,
        *,
        ignore_index: int,
        scale: float | None = None,
        random_scale: Sequence[float] | None = None,
        crop_size: Sequence[int] | int | None = None,
        hflip: float = 0.5,
        color_jitter: float | Sequence[float] | None = None,
        grayscale: float | None = None,
        noise: float | None = None,
        mean: Sequence[float] | None = IMAGENET_MEAN,
        std: Sequence[float] | None = IMAGENET_STD,
    ) -> None:
        key = "data.train_transforms"
        self.ignore_index = ignore_index
        self.scale = 1.0 if scale is None else float(scale)
        if self.scale <= 0:
            raise ValueError(f"{key}.scale={scale!r} is invalid; expected a resize factor > 0")
        low, high = (1.0, 1.0) if random_scale is None else (float(random_scale[0]), float(random_scale[1]))
        if not 0 < low <= high:
            raise ValueError(f"{key}.random_scale={random_scale!r} is invalid; expected [low, high] with 0 < low <= high")
        self.scale_range = (low, high)
        self.crop = as_pair(crop_size, f"{key}.crop_size", minimum=1) if crop_size is not None else None
        if random_scale is not None and self.crop is None:
            raise ValueError(
                f"{key}.random_scale={random_scale!r} with data.augment_on=device needs {key}.crop_size: a batch has one "
                f"size, and random scales give each item another one"
            )
        for name, p in (("hflip", hflip), ("grayscale", grayscale or 0.0)):
            if not 0.0 <= p <= 1.0:
                raise ValueError(f"{key}.{name}={p!r} is invalid; expected a probability in [0, 1]")
        self.hflip, self.grayscale = float(hflip), float(grayscale or 0.0)
        self.jitter = _jitter(color_jitter, key)
        if noise is not None and (isinstance(noise, bool) or not isinstance(noise, (int, float)) or noise < 0):
            raise ValueError(f"{key}.noise={noise!r} is invalid; expected a standard deviation >= 0 or null")
        self.noise = float(noise or 0.0)
        self.mean = None if mean is None or std is None else torch.tensor(mean, dtype=torch.float32).view(1, 3, 1, 1)
        self.std = None if mean is None or std is None else torch.tensor(std, dtype=torch.float32).view(1, 3, 1, 1)

    def output_size(self, height: int, width: int) -> tuple[int, int]:
        """``(h, w)`` of the augmented batch for inputs of ``height x width``."""
        if self.crop is not None:
            return self.crop
        return max(2, round(height * self.scale)), max(2, round(width * self.scale))

    def __call__(self, images: torch.Tensor, masks: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Augment a batch.

        Args:
            images: ``uint8`` (N, 3, H, W) (or float in [0, 1]).
            masks: integer (N, H, W): class indices and ``ignore_index``.

        Returns:
            ``(images float32 (N, 3, h, w), masks int64 (N, h, w))``, ``(h, w)`` = `output_size`.
            Random draws use the global generator of the batch's device.
        """
        if images.ndim != 4 or images.shape[1] != 3 or masks.shape != (images.shape[0], *images.shape[2:]):
            raise ValueError(
                f"BatchAugment got images {tuple(images.shape)} and masks {tuple(masks.shape)}; expected (N, 3, H, W) and (N, H, W)"
            )
        device = images.device
        n, _, height, width = images.shape
        out_h, out_w = self.output_size(height, width)
        theta = self._draw_theta(n, height, width, out_h, out_w, device)
        grid = F.affine_grid(theta, [n, 1, out_h, out_w], align_corners=False)

        pixels = images.float() / 255.0 if not images.is_floating_point() else images.float()
        pixels = self._antialias(pixels, height, width)
        out = F.grid_sample(pixels, grid, mode="bilinear", padding_mode="zeros", align_corners=False)
        shifted = (masks.to(torch.float32) + 1.0).unsqueeze(1)  # zero padding -> -1 after the shift back
        labels = F.grid_sample(shifted, grid, mode="nearest", padding_mode="zeros", align_corners=False).squeeze(1)
        labels = labels.round().to(torch.int64) - 1
        labels = torch.where(labels < 0, torch.full_like(labels, self.ignore_index), labels)

        out = self._photometric(out)
        if self.mean is not None:
            out = (out - self.mean.to(device)) / self.std.to(device)
        return out.contiguous(), labels

    def _draw_theta(self, n: int, height: int, width: int, out_h: int, out_w: int, device: torch.device) -> torch.Tensor:
        """Per-sample affine maps from output to input coordinates (normalised, ``align_corners=False``)."""
        low, high = self.scale_range
        factor = self.scale * (low + (high - low) * torch.rand(n, device=device))
        # the per-item pipeline resizes to rounded sizes; the effective factors follow them
        scaled_h = (height * factor).round().clamp(min=2)
        scaled_w = (width * factor).round().clamp(min=2)
        top = _crop_offset(scaled_h, out_h, device)
        left = _crop_offset(scaled_w, out_w, device)
        flip = torch.rand(n, device=device) < self.hflip
        # output pixel centre u (in [-1, 1]) -> scaled-image pixel top + (u + 1) * out / 2 -> input coordinate
        a_y = out_h / scaled_h
        b_y = (2 * top + out_h) / scaled_h - 1
        a_x = out_w / scaled_w
        b_x = (2 * left + out_w) / scaled_w - 1
        a_x = torch.where(flip, -a_x, a_x)
        theta = torch.zeros(n, 2, 3, device=device)
        theta[:, 0, 0], theta[:, 0, 2] = a_x, b_x
        theta[:, 1, 1], theta[:, 1, 2] = a_y, b_y
        return theta

    def _antialias(self, pixels: torch.Tensor, height: int, width: int) -> torch.Tensor:
        """One antialiased resize of the batch to the largest size a sample can draw, when that is a downscale."""
        largest = self.scale * self.scale_range[1]
        if largest >= 1.0:
            return pixels
        size = [max(2, round(height * largest)), max(2, round(width * largest))]
        return F.interpolate(pixels, size=size, mode="bilinear", antialias=True, align_corners=False)

    def _photometric(self, out: torch.Tensor) -> torch.Tensor:
        n, device = out.shape[0], out.device
        b, c, s = self.jitter
        if b > 0:
            out = (out * _uniform(n, 1 - b, 1 + b, device)).clamp(0, 1)
        if c > 0:
            mean = _gray(out).mean(dim=(1, 2, 3), keepdim=True)
            out = ((out - mean) * _uniform(n, 1 - c, 1 + c, device) + mean).clamp(0, 1)
        if s > 0:
            gray = _gray(out)
            out = ((out - gray) * _uniform(n, 1 - s, 1 + s, device) + gray).clamp(0, 1)
        if self.grayscale > 0:
            pick = (torch.rand(n, device=device) < self.grayscale).view(n, 1, 1, 1)
            out = torch.where(pick, _gray(out).expand_as(out), out)
        if self.noise > 0:
            out = (out + self.noise * torch.randn_like(out)).clamp(0, 1)
        return out


def _jitter(value: float | Sequence[float] | None, key: str) -> tuple[float, float, float]:
    if value is None:
        return 0.0, 0.0, 0.0
    values = (float(value),) * 3 if isinstance(value, (int, float)) else tuple(float(v) for v in value)
    if len(values) == 4 and values[3] == 0:
        values = values[:3]
    if len(values) != 3 or any(v < 0 or v > 1 for v in values):
        raise ValueError(
            f"{key}.color_jitter={value!r} is not supported with data.augment_on=device; expected a strength in [0, 1] or "
            f"[brightness, contrast, saturation] (hue jitter runs only with data.augment_on=loader)"
        )
    return values  # type: ignore[return-value]


def _uniform(n: int, low: float, high: float, device: torch.device) -> torch.Tensor:
    return (low + (high - low) * torch.rand(n, device=device)).view(n, 1, 1, 1)


def _gray(images: torch.Tensor) -> torch.Tensor:
    """ITU-R 601 luma of (N, 3, H, W) images, (N, 1, H, W) — torchvision's ``rgb_to_grayscale`` weights."""
    r, g, b = images.unbind(1)
    return (0.2989 * r + 0.587 * g + 0.114 * b).unsqueeze(1)


def _crop_offset(scaled: torch.Tensor, crop: int, device: torch.device) -> torch.Tensor:
    """``v2.RandomCrop(pad_if_needed=True)``'s top/left offset in scaled-image pixels (negative: padding)."""
    # v2 pads `diff` on both sides, then draws the crop inside the padded image: the image lands anywhere
    # within the crop, whole; a larger image is cropped at an offset in [0, scaled - crop].
    diff = crop - scaled
    low = torch.where(diff > 0, -diff, torch.zeros_like(diff))
    high = torch.where(diff > 0, torch.zeros_like(diff), -diff)
    return low + torch.floor(torch.rand(scaled.shape[0], device=device) * (high - low + 1))
