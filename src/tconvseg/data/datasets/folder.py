"""Your own data: a folder of images and a folder of label maps, paired by file stem.

Expected layout under ``root``::

    root/images/train/<name>.jpg|png|...     root/masks/train/<name>.png
    root/images/val/...                      root/masks/val/...
    root/images/test/...  (optional)         root/masks/test/...

Masks are single-channel 8-bit PNGs (mode ``L`` or ``P``) whose pixel values are class indices
``0..K-1`` or the ignore index. Class names, colours and the ignore index come from the config
(``data.info``, an inline `tconvseg.data.datasets.info.DatasetInfo`).
"""

from __future__ import annotations

import os
from pathlib import Path

import torch

from tconvseg.data.datasets.base import FilePairDataset, Transforms, pair_by_stem
from tconvseg.data.datasets.decode import allowed_table, check_label_values, check_same_size, load_image, load_label
from tconvseg.data.datasets.info import DatasetInfo, dataset_info
from tconvseg.data.errors import DatasetError, DatasetNotFoundError
from tconvseg.data.splits.groups import check_pattern

_IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".webp")
_LAYOUT = "images/{split}/ holding the images and masks/{split}/ holding one same-named single-channel label PNG per image"


class FolderDataset(FilePairDataset):
    """A split of ``root/images/{split}`` and ``root/masks/{split}`` as ``(image float32 (3, H, W), mask int64 (H, W))``.

    Args:
        root: the folder holding ``images/`` and ``masks/``.
        split: sub-folder name (``train``, ``val``, ``test``, ...).
        info: class names, palette and ignore index, or a registered name (``"camvid"``: CamVid's classes).
        transforms: joint transform on ``(tv_tensors.Image uint8, tv_tensors.Mask uint8)``.
        cache: keep every decoded pair in memory (and validate all of them up front).
        validate: decode every pair once at construction, so that a broken file, a size mismatch or
            a label value outside ``0..K-1`` / the ignore index fails before training starts, naming
            the file. Without it the same checks run when an item is read.
        group_pattern: regex whose first group, searched in an image's file stem, names the item's
            sequence (e.g. ``'^([^_]+)_'`` for ``street3_0001.png``), for ``data.holdout``; ``None``: no groups.

    Raises:
        DatasetNotFoundError / DatasetError: missing folders, unpaired files, undecodable files, a
            label map of another size than its image, or label values out of range.
    """

    def __init__(
        self, root: str | os.PathLike[str], split: str = "train", transforms: Transforms | None = None, *,
        info: DatasetInfo | str, cache: bool = False, validate: bool = True, group_pattern: str | None = None,
    ) -> None:
        info = dataset_info(info) if isinstance(info, str) else info
        super().__init__(info, transforms)
        check_pattern(group_pattern)
        self.group_pattern = group_pattern
        self.root, self.split = Path(root), split
        image_dir, mask_dir = self.root / "images" / split, self.root / "masks" / split
        for folder in (image_dir, mask_dir):
            if not folder.is_dir():
                raise DatasetNotFoundError(
                    f"folder dataset split {split!r}: directory {folder} does not exist. Expected {_LAYOUT.format(split=split)} "
                    f"under {self.root} (on the command line: data=folder data.dataset.root=<your folder>)."
                )
        self.pairs = pair_by_stem(image_dir, mask_dir, f"folder dataset split {split!r}", _IMAGE_SUFFIXES)
        if not self.pairs:
            raise DatasetError(f"folder dataset split {split!r} under {self.root} is empty; expected {_LAYOUT.format(split=split)}.")
        values = [v for v in (*range(info.num_classes), info.ignore_index) if 0 <= v < 256]
        self._allowed = allowed_table(values)
        self._expected = f"class indices 0..{info.num_classes - 1} or {info.ignore_index} (ignored), as data.info says"
        self._cache: list[tuple[torch.Tensor, torch.Tensor]] | None = None
        if cache or validate:
            decoded = [self._decode(i) for i in range(len(self.pairs))]
            self._cache = decoded if cache else None

    def _decode(self, index: int) -> tuple[torch.Tensor, torch.Tensor]:
        image_path, label_path = self.pairs[index]
        image, label = load_image(image_path), self.load_label(index)
        check_same_size(image, label, image_path, label_path)
        return image, label

    def load_pair(self, index: int) -> tuple[torch.Tensor, torch.Tensor]:
        return self._cache[index] if self._cache is not None else self._decode(index)

    def load_label(self, index: int) -> torch.Tensor:
        if self._cache is not None:
            return self._cache[index][1]
        path = self.pairs[index][1]
        label = load_label(path)
        check_label_values(label, self._allowed, path, self._expected)
        return label
