"""Oxford-IIIT Pet trimaps through ``torchvision.datasets.OxfordIIITPet``.

Layout under ``root`` (what torchvision's download extracts)::

    root/oxford-iiit-pet/images/<id>.jpg
    root/oxford-iiit-pet/annotations/trimaps/<id>.png     (1 = pet, 2 = background, 3 = border)
    root/oxford-iiit-pet/annotations/{trainval,test}.txt  ("<id> <class> <species> <breed>" per line)

Trimap values 1/2/3 become classes 0/1/2. The release has no validation split, so ``train``/``val``
are a seeded, deterministic partition of ``trainval``.
"""

from __future__ import annotations

import os
from pathlib import Path

import torch
from torchvision.datasets import OxfordIIITPet

from tconvseg.data.datasets.base import FilePairDataset, Transforms
from tconvseg.data.datasets.decode import allowed_table, check_label_values, load_label
from tconvseg.data.datasets.info import PETS
from tconvseg.data.errors import DatasetError, DatasetNotFoundError, download_hint

SPLITS = ("train", "val", "trainval", "test")
_LAYOUT = (
    "root/oxford-iiit-pet/{images/<id>.jpg, annotations/trimaps/<id>.png, annotations/trainval.txt, "
    "annotations/test.txt}"
)
# Trimap value v -> class v - 1; everything else is rejected by check_label_values before mapping.
_TRIMAP_TO_CLASS = torch.full((256,), PETS.ignore_index, dtype=torch.uint8)
_TRIMAP_TO_CLASS[1:4] = torch.tensor([0, 1, 2], dtype=torch.uint8)


def split_indices(n: int, split: str, val_fraction: float, seed: int) -> list[int]:
    """Indices into ``trainval`` (length ``n``) belonging to ``split`` (``train``/``val``/``trainval``).

    A seeded permutation holds out ``round(n * val_fraction)`` items (at least one when the fraction
    is positive) as ``val``; both parts are returned in ascending order so their order is stable too.
    """
    if not 0.0 <= val_fraction < 1.0:
        raise DatasetError(f"Pets val_fraction={val_fraction!r} is invalid; expected a fraction in [0, 1).")
    if split == "trainval":
        return list(range(n))
    n_val = max(1, round(n * val_fraction)) if val_fraction > 0 and n > 1 else 0
    if split == "val" and n_val == 0:
        raise DatasetError(f"Pets split 'val' is empty (val_fraction={val_fraction}, {n} trainval images).")
    perm = torch.randperm(n, generator=torch.Generator().manual_seed(seed)).tolist()
    return sorted(perm[:n_val] if split == "val" else perm[n_val:])


class PetsDataset(FilePairDataset):
    """Oxford-IIIT Pet split as ``(image float32 (3, H, W), mask int64 (H, W))`` after ``transforms``.

    Args:
        root: directory holding ``oxford-iiit-pet/``.
        split: ``"train"`` / ``"val"`` (seeded partition of trainval), ``"trainval"`` or ``"test"``.
        transforms: joint transform on ``(tv_tensors.Image uint8, tv_tensors.Mask uint8)``.
        download: fetch images and annotations into ``root/oxford-iiit-pet`` when missing.
        val_fraction: share of trainval held out as ``val``.
        seed: seed of the train/val partition (independent of the global RNG).
    """

    def __init__(
        self,
        root: str | os.PathLike[str],
        split: str = "train",
        transforms: Transforms | None = None,
        download: bool = False,
        val_fraction: float = 0.1,
        seed: int = 0,
    ) -> None:
        super().__init__(PETS, transforms)
        if split not in SPLITS:
            raise DatasetError(f"Pets split {split!r} is unknown; expected one of {SPLITS}.")
        self.root, self.split = Path(root), split
        source = "test" if split == "test" else "trainval"
        base = self.root / "oxford-iiit-pet"
        list_file = base / "annotations" / f"{source}.txt"
        try:
            OxfordIIITPet(str(self.root), split=source, target_types="segmentation", download=download)
        except RuntimeError as exc:  # torchvision: images/ or annotations/ missing
            raise DatasetNotFoundError(
                f"Oxford-IIIT Pet not found under {self.root}: expected {_LAYOUT}. {download_hint('oxford-iiit-pet/')}"
            ) from exc
        except FileNotFoundError as exc:
            raise DatasetNotFoundError(f"Pets split list {list_file} does not exist; expected {_LAYOUT}.") from exc
        except ValueError as exc:  # torchvision unpacks four fields per line
            raise DatasetError(
                f"Pets split list {list_file} is malformed ({exc}); expected lines '<id> <class> <species> <breed>'."
            ) from exc
        ids = [line.split()[0] for line in list_file.read_text().splitlines() if line.strip()]
        if split != "test":
            ids = [ids[i] for i in split_indices(len(ids), split, val_fraction, seed)]
        self.pairs = [(base / "images" / f"{i}.jpg", base / "annotations" / "trimaps" / f"{i}.png") for i in ids]
        if not self.pairs:
            raise DatasetError(f"Pets split {split!r} under {self.root} is empty; {list_file} lists no images.")
        self._check_pairs_exist(f"Pets split {split!r}", "trimap", str(list_file), _LAYOUT)
        self._allowed = allowed_table([1, 2, 3])

    def load_label(self, index: int) -> torch.Tensor:
        path = self.pairs[index][1]
        trimap = load_label(path)
        check_label_values(trimap, self._allowed, path, "trimap values 1 (pet), 2 (background), 3 (border)")
        return _TRIMAP_TO_CLASS[trimap.to(torch.int64)]
