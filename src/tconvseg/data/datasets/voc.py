"""PASCAL VOC segmentation through ``torchvision.datasets.VOCSegmentation``.

Layout under ``root`` (what torchvision's download extracts)::

    root/VOCdevkit/VOC2012/JPEGImages/<id>.jpg
    root/VOCdevkit/VOC2012/SegmentationClass/<id>.png      (palette PNG: index = class, 255 = boundary)
    root/VOCdevkit/VOC2012/ImageSets/Segmentation/{train,val,trainval}.txt
"""

from __future__ import annotations

import os
from pathlib import Path

import torch
from torchvision.datasets import VOCSegmentation

from tconvseg.data.datasets.base import FilePairDataset, Transforms
from tconvseg.data.datasets.decode import allowed_table, check_label_values, load_label
from tconvseg.data.datasets.info import VOC
from tconvseg.data.errors import DatasetError, DatasetNotFoundError, download_hint

_EXPECTED_LABELS = f"class indices 0..{VOC.num_classes - 1} or {VOC.ignore_index} (boundary)"


class VOCDataset(FilePairDataset):
    """VOC segmentation split as ``(image float32 (3, H, W), mask int64 (H, W))`` after ``transforms``.

    torchvision finds (and with ``download=True`` fetches) the files; decoding and checks are ours so
    that a bad file yields a `DatasetError` naming it. Pairs are decoded lazily in ``__getitem__``.

    Args:
        root: directory holding ``VOCdevkit/``.
        split: ``"train"``, ``"val"`` or ``"trainval"``.
        transforms: joint transform on ``(tv_tensors.Image uint8, tv_tensors.Mask uint8)``.
        download: fetch and extract the VOC tarball into ``root`` when missing.
        year: VOC release, ``"2007"`` .. ``"2012"``.
    """

    def __init__(
        self,
        root: str | os.PathLike[str],
        split: str = "train",
        transforms: Transforms | None = None,
        download: bool = False,
        year: str = "2012",
    ) -> None:
        super().__init__(VOC, transforms)
        self.root, self.split = Path(root), split
        layout = (
            f"root/VOCdevkit/VOC{year}/{{JPEGImages/*.jpg, SegmentationClass/*.png, "
            f"ImageSets/Segmentation/{split}.txt}}"
        )
        try:
            self._voc = self._open(year, split, download)
        except ValueError as exc:  # torchvision's verify_str_arg: unknown year or split
            raise DatasetError(f"VOC: {exc}") from exc
        except RuntimeError as exc:  # torchvision: dataset directory not found
            raise DatasetNotFoundError(
                f"VOC {year} not found under {self.root}: expected {layout}. {download_hint('VOCdevkit/')}"
            ) from exc
        except FileNotFoundError as exc:  # torchvision opens the split list without checking it
            raise DatasetNotFoundError(
                f"VOC split list {exc.filename} does not exist; expected {layout}."
            ) from exc
        self.pairs = [(Path(i), Path(m)) for i, m in zip(self._voc.images, self._voc.masks)]
        if not self.pairs:
            raise DatasetError(f"VOC split {split!r} under {self.root} lists no images; expected {layout}.")
        self._check_pairs_exist(f"VOC split {split!r}", "label", "the split file", layout)
        self._allowed = allowed_table([*range(VOC.num_classes), VOC.ignore_index])

    def _open(self, year: str, split: str, download: bool) -> VOCSegmentation:
        # torchvision re-extracts the 2 GB tarball on every download=True construction, so only ask
        # for the download when the data is actually missing.
        try:
            return VOCSegmentation(str(self.root), year=year, image_set=split, download=False)
        except RuntimeError:
            if not download:
                raise
        return VOCSegmentation(str(self.root), year=year, image_set=split, download=True)

    def load_label(self, index: int) -> torch.Tensor:
        path = self.pairs[index][1]
        label = load_label(path)
        check_label_values(label, self._allowed, path, _EXPECTED_LABELS)
        return label
