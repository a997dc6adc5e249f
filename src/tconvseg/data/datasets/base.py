"""Shared ``(image, mask)`` contract of every segmentation dataset in this package."""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

import torch
from torch.utils.data import Dataset
from torchvision import tv_tensors

from tconvseg.data.datasets.decode import check_same_size, load_image
from tconvseg.data.datasets.info import DatasetInfo
from tconvseg.data.errors import DatasetError, DatasetNotFoundError, list_some
from tconvseg.data.splits.groups import group_of

Transforms = Callable[[Any, Any], tuple[Any, Any]]
"""A joint transform called as ``transforms(image, mask)``, e.g. a ``torchvision.transforms.v2.Compose``."""


def apply_transforms(
    transforms: Transforms | None, image: torch.Tensor, label: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    """Run ``transforms`` on a decoded pair and enforce the output contract.

    Args:
        transforms: joint transform receiving ``tv_tensors.Image`` (uint8, (3, H, W)) and
            ``tv_tensors.Mask`` (uint8, (H, W)); ``None`` only converts dtypes.
        image: ``uint8`` tensor ``(3, H, W)``.
        label: integer tensor ``(H, W)`` of class indices and the ignore value.

    Returns:
        ``(image, mask)`` as plain tensors: image ``float32`` ``(3, H', W')`` (scaled to [0, 1] when
        the transforms left it ``uint8``), mask ``int64`` ``(H'', W'')``.
    """
    img: Any = tv_tensors.Image(image)
    mask: Any = tv_tensors.Mask(label)
    if transforms is not None:
        img, mask = transforms(img, mask)
    img = torch.as_tensor(img).as_subclass(torch.Tensor)
    mask = torch.as_tensor(mask).as_subclass(torch.Tensor)
    if not img.is_floating_point():
        img = img.to(torch.float32) / 255.0
    # ``.to`` copies from uint8, so callers can never write into a dataset's cached label tensors.
    return img, mask.to(torch.int64)


def collate_pairs(batch: list[tuple[torch.Tensor, torch.Tensor]]) -> tuple[torch.Tensor, torch.Tensor]:
    """Stack ``(image (3, H, W), mask (H, W))`` items into ``(images (N, 3, H, W), masks (N, H, W))``."""
    shapes = {(tuple(img.shape), tuple(mask.shape)) for img, mask in batch}
    if len(shapes) > 1:
        raise DatasetError(
            f"cannot batch items of different sizes {sorted(shapes)[:4]} (image, mask shapes); expected every "
            f"item of a batch to share one size. Resize to a fixed size, crop, or use batch size 1."
        )
    return torch.stack([img for img, _ in batch]), torch.stack([mask for _, mask in batch])


class SegmentationDataset(Dataset[tuple[torch.Tensor, torch.Tensor]]):
    """Base class: subclasses decode pairs, this class applies transforms and the output contract.

    Subclasses implement `__len__`, `load_pair` and (when labels are cheaper to read
    alone) `load_label`. Item ``i`` is ``(image float32 (3, H, W), mask int64 (H, W))``.
    """

    info: DatasetInfo
    #: Regex whose first group, searched in an item's name, is the item's group (its drive / sequence);
    #: ``None``: the dataset has no groups. Read by `groups`.
    group_pattern: str | None = None
    #: The split name this dataset was built for (set by `tconvseg.data.SegmentationDataModule`); ``None``: not known.
    source_split: str | None = None

    def __init__(self, info: DatasetInfo, transforms: Transforms | None = None) -> None:
        self.info = info
        self.transforms = transforms

    def names(self) -> list[str]:
        """One name per item, in index order: the image file's stem, or ``item<i>`` for generated data."""
        pairs = getattr(self, "pairs", None)
        if pairs is not None:
            return [Path(image).stem for image, _ in pairs]
        return [f"item{i:06d}" for i in range(len(self))]

    def groups(self) -> list[str]:
        """One group name per item (e.g. CamVid's drive ``0016E5``), read from `names` by ``group_pattern``.

        Raises:
            DatasetError: the dataset has no ``group_pattern``, or a name does not match it (naming the item).
        """
        if self.group_pattern is None:
            raise DatasetError(
                f"{type(self).__name__} has no groups: its items carry no sequence name. Expected data.dataset.group_pattern, "
                f"a regex whose first group is the sequence in each file name (e.g. '^([^_]+)_' for 'drive1_0001.png')."
            )
        return [group_of(name, self.group_pattern) for name in self.names()]

    def __len__(self) -> int:
        raise NotImplementedError

    def load_pair(self, index: int) -> tuple[torch.Tensor, torch.Tensor]:
        """Untransformed pair: image ``uint8 (3, H, W)``, label ``uint8 (H, W)`` with mapped class indices."""
        raise NotImplementedError

    def load_label(self, index: int) -> torch.Tensor:
        """Untransformed label ``uint8 (H, W)`` of item ``index`` (class indices and ``info.ignore_index``)."""
        return self.load_pair(index)[1]

    def raw_masks(self) -> Iterator[torch.Tensor]:
        """All labels at their stored resolution, in index order, for class-frequency statistics."""
        for index in range(len(self)):
            yield self.load_label(index)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, torch.Tensor]:
        if not -len(self) <= index < len(self):
            raise IndexError(f"index {index} out of range for {type(self).__name__} of length {len(self)}")
        image, label = self.load_pair(index % len(self))
        return apply_transforms(self.transforms, image, label)


def check_listed_pairs_exist(pairs: Sequence[tuple[Path, Path]], what: str, label_kind: str, listed_in: str, layout: str) -> None:
    """Raise naming the listed image / label files that do not exist (``what``: e.g. "VOC split 'train'")."""
    for column, kind in ((0, "image"), (1, label_kind)):
        missing = [p[column] for p in pairs if not p[column].is_file()]
        if missing:
            raise DatasetNotFoundError(
                f"{what}: {len(missing)} {kind} file(s) listed in {listed_in} do not exist: {list_some(missing)}. Expected {layout}."
            )


def pair_by_stem(image_dir: Path, label_dir: Path, what: str, suffixes: tuple[str, ...]) -> list[tuple[Path, Path]]:
    """``(image, label)`` pairs of same-stem files (with one of ``suffixes``) in two folders, sorted by stem.

    ``what`` names the data in messages, e.g. ``"CamVid split 'train'"``.

    Raises:
        DatasetError: an image without a label, or a label without an image, naming them.
    """

    def files(folder: Path) -> dict[str, Path]:
        return {p.stem: p for p in folder.iterdir() if p.suffix.lower() in suffixes and not p.name.startswith(".") and p.is_file()}

    images, labels = files(image_dir), files(label_dir)
    orphans = sorted(images.keys() - labels.keys())
    if orphans:
        raise DatasetError(
            f"{what}: {len(orphans)} image(s) in {image_dir} have no label in {label_dir}: "
            f"{list_some([images[k].name for k in orphans])}. Expected one same-named label PNG per image."
        )
    orphans = sorted(labels.keys() - images.keys())
    if orphans:
        raise DatasetError(
            f"{what}: {len(orphans)} label(s) in {label_dir} have no image in {image_dir}: "
            f"{list_some([labels[k].name for k in orphans])}. Expected one same-named image per label PNG."
        )
    return [(images[k], labels[k]) for k in sorted(images)]


class FilePairDataset(SegmentationDataset):
    """Pairs of ``(image file, label file)`` decoded at each access (VOC, Pets).

    Subclasses fill ``self.pairs`` and implement `load_label` (decode, check and map one label).
    """

    pairs: list[tuple[Path, Path]]

    def _check_pairs_exist(self, what: str, label_kind: str, listed_in: str, layout: str) -> None:
        check_listed_pairs_exist(self.pairs, what, label_kind, listed_in, layout)

    def __len__(self) -> int:
        return len(self.pairs)

    def load_pair(self, index: int) -> tuple[torch.Tensor, torch.Tensor]:
        image_path, label_path = self.pairs[index]
        image = load_image(image_path)
        label = self.load_label(index)
        check_same_size(image, label, image_path, label_path)
        return image, label
