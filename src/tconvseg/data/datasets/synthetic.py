"""Procedurally generated shapes: a learnable segmentation task that needs no files.

Each sample is a uniform-noise background (class 0) with a few rectangles, ellipses and triangles
painted on top. A shape's class is its label and fixes its flat colour (the class's palette colour
plus mild noise), so colour and texture both identify the class. Sample ``i`` depends only on
``(seed, i)``: the same on every call, in every worker, independent of the global RNG.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import torch

from tconvseg.data.datasets.base import SegmentationDataset, Transforms
from tconvseg.data.datasets.info import synthetic_info

_SPLIT_OFFSETS = {"train": 0, "val": 1, "test": 2}
_MAX_ITEMS = 1_000_003  # per-item seeds are seed * _MAX_ITEMS + index, unique while index < _MAX_ITEMS


class SyntheticShapesDataset(SegmentationDataset):
    """``num_samples`` generated pairs of ``(image float32 (3, H, W), mask int64 (H, W))``.

    Args:
        num_samples: dataset length.
        size: ``(height, width)`` of every sample.
        num_classes: classes including the background (>= 2); shapes use classes ``1..num_classes-1``.
        seed: base seed; sample ``i`` is generated from ``seed * 1_000_003 + i``.
        transforms: joint transform on ``(tv_tensors.Image uint8, tv_tensors.Mask uint8)``.
        max_shapes: at most this many shapes per image (at least one).
    """

    def __init__(
        self,
        num_samples: int,
        size: Sequence[int] = (64, 96),
        num_classes: int = 4,
        seed: int = 0,
        transforms: Transforms | None = None,
        max_shapes: int = 4,
    ) -> None:
        super().__init__(synthetic_info(num_classes), transforms)
        height, width = (int(v) for v in size)
        if not 0 <= num_samples < _MAX_ITEMS:
            raise ValueError(f"synthetic num_samples={num_samples} is invalid; expected 0..{_MAX_ITEMS - 1}")
        if height < 4 or width < 4:
            raise ValueError(f"synthetic size={tuple(size)} is too small; expected height and width >= 4")
        if max_shapes < 1:
            raise ValueError(f"synthetic max_shapes={max_shapes} is invalid; expected >= 1")
        self.num_samples, self.size, self.seed, self.max_shapes = num_samples, (height, width), seed, max_shapes
        self._colours = torch.tensor(self.info.palette, dtype=torch.float32)  # (K, 3)
        ys = torch.arange(height, dtype=torch.float32) + 0.5
        xs = torch.arange(width, dtype=torch.float32) + 0.5
        self._yy, self._xx = torch.meshgrid(ys, xs, indexing="ij")

    def __len__(self) -> int:
        return self.num_samples

    def _shape_mask(self, kind: int, cy: float, cx: float, ry: float, rx: float) -> torch.Tensor:
        dy, dx = self._yy - cy, self._xx - cx
        if kind == 0:  # axis-aligned rectangle
            return (dy.abs() <= ry) & (dx.abs() <= rx)
        if kind == 1:  # ellipse
            return (dy / ry) ** 2 + (dx / rx) ** 2 <= 1.0
        # Upward triangle: apex at (cy - ry, cx), base from (cy + ry, cx - rx) to (cy + ry, cx + rx).
        depth = (dy + ry) / (2 * ry)
        return (depth >= 0) & (depth <= 1) & (dx.abs() <= rx * depth)

    def load_pair(self, index: int) -> tuple[torch.Tensor, torch.Tensor]:
        gen = torch.Generator().manual_seed(self.seed * _MAX_ITEMS + index)
        height, width = self.size
        image = torch.randint(0, 256, (3, height, width), generator=gen, dtype=torch.uint8).float()
        label = torch.zeros(height, width, dtype=torch.uint8)
        num_classes = self.info.num_classes
        for _ in range(int(torch.randint(1, self.max_shapes + 1, (), generator=gen))):
            cls = int(torch.randint(1, num_classes, (), generator=gen))
            kind = int(torch.randint(0, 3, (), generator=gen))
            u = torch.rand(4, generator=gen).tolist()
            cy, cx = u[0] * height, u[1] * width
            ry, rx = height * (0.1 + 0.25 * u[2]), width * (0.1 + 0.25 * u[3])
            region = self._shape_mask(kind, cy, cx, ry, rx)
            label[region] = cls
            # Mild noise keeps shapes from being a single flat colour without hiding the class colour.
            noise = torch.randn(3, height, width, generator=gen) * 12.0
            painted = self._colours[cls].view(3, 1, 1) + noise
            image = torch.where(region, painted, image)
        return image.clamp_(0, 255).round_().to(torch.uint8), label


def synthetic_split(
    split: str,
    transforms: Transforms | None = None,
    *,
    num_samples: Mapping[str, int] | int,
    size: Sequence[int] = (64, 96),
    num_classes: int = 4,
    seed: int = 0,
) -> SyntheticShapesDataset:
    """Split-aware factory for the datamodule: ``train``/``val``/``test`` get disjoint seeds.

    ``num_samples`` is one length for every split or a mapping ``split -> length``.
    """
    if split not in _SPLIT_OFFSETS:
        raise ValueError(f"synthetic split {split!r} is unknown; expected one of {sorted(_SPLIT_OFFSETS)}")
    if isinstance(num_samples, Mapping):
        if split not in num_samples:
            raise ValueError(f"synthetic num_samples has no entry for split {split!r}; got keys {sorted(num_samples)}")
        count = int(num_samples[split])
    else:
        count = int(num_samples)
    split_seed = seed * len(_SPLIT_OFFSETS) + _SPLIT_OFFSETS[split]
    return SyntheticShapesDataset(count, size=size, num_classes=num_classes, seed=split_seed, transforms=transforms)
