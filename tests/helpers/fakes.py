"""Builders of tiny fake datasets in the real on-disk layouts, for tests (plain functions, no fixtures).

All images are random but reproducible (numpy ``default_rng(seed)``); labels are random blocks so
that several classes (and the ignore value) appear in every map.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np
from PIL import Image

from tconvseg.data import synthetic_split
from tconvseg.data.datasets.info import CAMVID, VOC

CAMVID_SPLITS = ("train", "val", "test")


def write_png(path: Path, array: np.ndarray, palette: Sequence[tuple[int, int, int]] | None = None) -> Path:
    """Write a ``uint8`` array (H, W) or (H, W, 3) as PNG; with ``palette`` as a palette ('P') image."""
    path.parent.mkdir(parents=True, exist_ok=True)
    img = Image.fromarray(np.asarray(array, dtype=np.uint8))
    if palette is not None:
        img.putpalette([c for rgb in palette for c in rgb])  # turns an "L" image into "P", values = indices
    img.save(path)
    return path


def random_image(rng: np.random.Generator, size: tuple[int, int]) -> np.ndarray:
    return rng.integers(0, 256, (*size, 3), dtype=np.uint8)


def block_labels(rng: np.random.Generator, size: tuple[int, int], values: Sequence[int], block: int = 6) -> np.ndarray:
    """Label map (H, W) of ``block``-sized squares with values drawn from ``values``."""
    h, w = size
    grid = rng.choice(np.asarray(values), size=(-(-h // block), -(-w // block)))
    return np.kron(grid, np.ones((block, block), dtype=np.int64))[:h, :w].astype(np.uint8)


def _camvid_pair(root: Path, split: str, name: str, rng: np.random.Generator, size: tuple[int, int]) -> None:
    write_png(root / split / name, random_image(rng, size))
    values = [*range(CAMVID.num_classes), CAMVID.ignore_index]
    write_png(root / f"{split}annot" / name, block_labels(rng, size, values))


def make_camvid_tree(
    root: Path,
    n_train: int = 6,
    n_val: int = 3,
    n_test: int = 3,
    size: tuple[int, int] = (36, 48),
    list_files: str | None = "relative",
    seed: int = 0,
    groups: Sequence[str] = ("0001TP",),
) -> Path:
    """CamVid in the SegNet layout under ``root``: ``{split}/``, ``{split}annot/`` and list files.

    Args:
        size: ``(height, width)`` of every image (CamVid's real one is 360x480).
        list_files: ``"relative"`` (``train/x.png trainannot/x.png``, like /work/shared),
            ``"absolute"`` (``/SegNet/CamVid/train/x.png ...``, like the SegNet release) or ``None``.
        A split with ``n_* == 0`` is not created.
        groups: drive prefixes of the file names, given to the items of each split in turn
            (``0001TP_train_0000.png``, ``0006R0_train_0001.png``, ...).

    Returns:
        ``root``.
    """
    rng = np.random.default_rng(seed)
    for split, count in zip(CAMVID_SPLITS, (n_train, n_val, n_test)):
        if count == 0:
            continue
        names = [f"{groups[i % len(groups)]}_{split}_{i:04d}.png" for i in range(count)]
        for name in names:
            _camvid_pair(root, split, name, rng, size)
        if list_files is not None:
            prefix = "/SegNet/CamVid/" if list_files == "absolute" else ""
            lines = [f"{prefix}{split}/{n} {prefix}{split}annot/{n}" for n in names]
            (root / f"{split}.txt").write_text("\n".join(lines) + "\n")
    return root


def make_voc_tree(
    root: Path, n_train: int = 4, n_val: int = 2, size: tuple[int, int] = (30, 40), seed: int = 0
) -> Path:
    """PASCAL VOC 2012 segmentation layout under ``root/VOCdevkit/VOC2012`` (palette label PNGs)."""
    rng = np.random.default_rng(seed)
    base = root / "VOCdevkit" / "VOC2012"
    ids = {"train": [f"2007_{i:06d}" for i in range(n_train)], "val": [f"2008_{i:06d}" for i in range(n_val)]}
    values = [*range(VOC.num_classes), VOC.ignore_index]
    palette = list(VOC.palette) + [(0, 0, 0)] * (256 - VOC.num_classes)
    palette[VOC.ignore_index] = VOC.ignore_color
    for split_ids in ids.values():
        for i in split_ids:
            (base / "JPEGImages").mkdir(parents=True, exist_ok=True)
            Image.fromarray(random_image(rng, size)).save(base / "JPEGImages" / f"{i}.jpg")
            write_png(base / "SegmentationClass" / f"{i}.png", block_labels(rng, size, values), palette=palette)
    sets = base / "ImageSets" / "Segmentation"
    sets.mkdir(parents=True, exist_ok=True)
    for name, split_ids in (*ids.items(), ("trainval", ids["train"] + ids["val"])):
        (sets / f"{name}.txt").write_text("\n".join(split_ids) + "\n")
    return root


def make_pets_tree(
    root: Path, n_trainval: int = 10, n_test: int = 4, size: tuple[int, int] = (30, 40), seed: int = 0
) -> Path:
    """Oxford-IIIT Pet layout under ``root/oxford-iiit-pet`` with trimaps holding values 1/2/3."""
    rng = np.random.default_rng(seed)
    base = root / "oxford-iiit-pet"
    (base / "images").mkdir(parents=True, exist_ok=True)
    for split, count in (("trainval", n_trainval), ("test", n_test)):
        lines = []
        for i in range(count):
            image_id = f"Abyssinian_{split}{i}"
            Image.fromarray(random_image(rng, size)).save(base / "images" / f"{image_id}.jpg")
            write_png(base / "annotations" / "trimaps" / f"{image_id}.png", block_labels(rng, size, [1, 2, 3]))
            lines.append(f"{image_id} 1 1 1")
        (base / "annotations" / f"{split}.txt").write_text("\n".join(lines) + "\n")
    return root


def make_folder_tree(
    root: Path, splits: dict[str, int] | None = None, num_classes: int = 3, size: tuple[int, int] = (30, 40), seed: int = 0
) -> Path:
    """Your-own-data layout under ``root``: ``images/{split}/<name>.jpg`` and ``masks/{split}/<name>.png``.

    Label maps hold the values ``0..num_classes-1`` and 255 (ignored). Returns ``root``.
    """
    rng = np.random.default_rng(seed)
    for split, count in (splits or {"train": 4, "val": 2}).items():
        for i in range(count):
            (root / "images" / split).mkdir(parents=True, exist_ok=True)
            Image.fromarray(random_image(rng, size)).save(root / "images" / split / f"img_{i:03d}.jpg")
            write_png(root / "masks" / split / f"img_{i:03d}.png", block_labels(rng, size, [*range(num_classes), 255]))
    return root


def recording_synthetic_split(split: str, transforms=None, *, record: str, download: bool = False, **kwargs):
    """``synthetic_split`` that appends ``<pid> <split> <download>`` to the file ``record`` on every call:
    a stand-in for a downloading dataset, to count which process asked for a download."""
    with open(record, "a") as handle:
        handle.write(f"{os.getpid()} {split} {download}\n")
    return synthetic_split(split, transforms, **kwargs)
