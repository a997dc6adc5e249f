"""Plain image files for prediction: listing an input, reading each image, batching same-size images.

Every image keeps its own size (resized only by the ``transforms``), so a batch may only hold
images of one size: `SameSizeBatchSampler` groups them. A file that cannot be read either
stops the run naming it (``on_error="stop"``) or is left out and reported (``"skip"``).
"""

from __future__ import annotations

import glob
from collections import defaultdict
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Literal

import torch
from PIL import Image
from torch.utils.data import Dataset, Sampler
from torchvision import tv_tensors

from tconvseg.data.datasets.base import Transforms, apply_transforms
from tconvseg.data.datasets.decode import load_image
from tconvseg.data.errors import DatasetError, DatasetNotFoundError, list_some

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".webp")
OnError = Literal["stop", "skip"]


def list_images(source: str) -> list[Path]:
    """The image files of ``source``: one file, every image file directly in a folder, or a glob pattern.

    Raises:
        DatasetNotFoundError: nothing matches, or the folder holds no image file.
        DatasetError: two files share a stem (their outputs ``<stem>.png`` would collide).
    """
    path = Path(source)
    if path.is_file():
        files = [path]
    elif path.is_dir():
        files = sorted(p for p in path.iterdir() if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES and not p.name.startswith("."))
        if not files:
            raise DatasetNotFoundError(f"input={source}: the folder holds no image file; expected files ending in {', '.join(IMAGE_SUFFIXES)}")
    else:
        files = sorted(Path(p) for p in glob.glob(source, recursive=True) if Path(p).is_file())
        if not files:
            raise DatasetNotFoundError(
                f"input={source}: no such file or folder, and no file matches it as a glob pattern; expected an image, "
                "a folder of images or a pattern like 'photos/*.jpg'"
            )
    by_stem: dict[str, list[Path]] = defaultdict(list)
    for file in files:
        by_stem[file.stem].append(file)
    clashes = [paths for paths in by_stem.values() if len(paths) > 1]
    if clashes:
        raise DatasetError(
            f"input={source}: {len(clashes)} name(s) occur more than once, e.g. {list_some(clashes[0])}; each "
            "prediction is written as <stem>.png, so expected every input to have its own file name stem."
        )
    return files


def read_size(path: Path) -> tuple[int, int]:
    """``(height, width)`` from the file header (the pixels are not decoded), as a `DatasetError` if unreadable."""
    try:
        with Image.open(path) as img:
            width, height = img.size
    except Exception as exc:  # PIL raises OSError, SyntaxError, ValueError, ... by format
        raise DatasetError(f"cannot read image file {path}: {type(exc).__name__}: {exc}. Expected an image PIL can open.") from exc
    return height, width


#: PIL's own limit (``Image.MAX_IMAGE_PIXELS``): past it PIL warns, past twice it refuses a decompression bomb.
DEFAULT_MAX_IMAGE_PIXELS = 178_956_970


def check_pixels(path: Path, size: tuple[int, int], max_pixels: int) -> None:
    """Refuse an image above ``max_pixels`` from its header size, naming the file, its size and the option."""
    height, width = size
    if height * width > max_pixels:
        raise DatasetError(
            f"{path} is {width}x{height} = {height * width:,} pixels, above max_image_pixels={max_pixels:,}; expected a smaller "
            f"image (a file this large may be a decompression bomb). Raise max_image_pixels to read it (tiles=auto keeps the "
            f"network's memory bounded), or on_error=skip to leave it out."
        )


@contextmanager
def _pil_limit(max_pixels: int) -> Iterator[None]:
    """PIL's bomb guard at twice ``max_pixels`` while decoding (the size was checked against ``max_pixels`` already)."""
    before = Image.MAX_IMAGE_PIXELS
    Image.MAX_IMAGE_PIXELS = max_pixels
    try:
        yield
    finally:
        Image.MAX_IMAGE_PIXELS = before


class ImageFilesDataset(Dataset[dict[str, Any]]):
    """Item ``i``: ``{"image": float32 (3, H, W) after transforms, "path": str}``, or ``{"error": message, "path": str}``.

    Grayscale, palette and RGBA files are converted to RGB. ``sizes`` holds each file's size from
    its header; files whose header cannot be read raise, or with ``on_error="skip"`` are left out
    and listed in ``failed`` as ``(path, message)``. With ``uint8=True`` the image stays ``uint8``
    (transforms that only resize; the caller normalises, e.g. tile by tile: a 100-megapixel photo is
    300 MB as bytes, 1.2 GB as floats).
    """

    def __init__(
        self, files: list[Path], transforms: Transforms | None = None, on_error: OnError = "stop", max_pixels: int | None = None,
        uint8: bool = False,
    ) -> None:
        if on_error not in ("stop", "skip"):
            raise ValueError(f"on_error={on_error!r} is invalid; expected stop or skip")
        self.transforms, self.on_error, self.uint8 = transforms, on_error, uint8
        self.max_pixels = DEFAULT_MAX_IMAGE_PIXELS if max_pixels is None else max_pixels
        self.files: list[Path] = []
        self.sizes: list[tuple[int, int]] = []
        self.failed: list[tuple[str, str]] = []
        for file in files:
            try:
                size = read_size(file)
                check_pixels(file, size, self.max_pixels)
            except DatasetError as err:
                if on_error == "stop":
                    raise
                self.failed.append((str(file), str(err)))
                continue
            self.files.append(file)
            self.sizes.append(size)

    def __len__(self) -> int:
        return len(self.files)

    def __getitem__(self, index: int) -> dict[str, Any]:
        path = self.files[index]
        try:
            with _pil_limit(self.max_pixels):
                image = load_image(path)
        except DatasetError as err:
            if self.on_error == "stop":
                raise
            return {"error": str(err), "path": str(path)}
        # A dummy mask rides along because the joint transforms expect one; it is dropped.
        dummy = torch.zeros(image.shape[-2:], dtype=torch.uint8)
        if self.uint8:
            if self.transforms is not None:
                image = torch.as_tensor(self.transforms(tv_tensors.Image(image), tv_tensors.Mask(dummy))[0]).as_subclass(torch.Tensor)
            if image.dtype != torch.uint8:
                raise ValueError(f"the transforms of {path} gave a {image.dtype} image; uint8=True expects transforms that keep uint8 "
                                 "(resizing only)")
        else:
            image, _ = apply_transforms(self.transforms, image, dummy)
        return {"image": image, "path": str(path)}


def collate_images(items: list[dict[str, Any]]) -> dict[str, Any]:
    """``{"images": (N, 3, H, W) or None, "paths": [N], "failed": [(path, message)]}`` of same-size items."""
    good = [item for item in items if "image" in item]
    return {
        "images": torch.stack([item["image"] for item in good]) if good else None,
        "paths": [item["path"] for item in good],
        "failed": [(item["path"], item["error"]) for item in items if "error" in item],
    }


class SameSizeBatchSampler(Sampler[list[int]]):
    """Batches of at most ``batch_size`` indices whose ``sizes`` are equal, in order of first appearance."""

    def __init__(self, sizes: list[tuple[int, int]], batch_size: int) -> None:
        if batch_size < 1:
            raise ValueError(f"batch_size={batch_size} is invalid; expected a positive integer")
        groups: dict[tuple[int, int], list[int]] = defaultdict(list)
        for index, size in enumerate(sizes):
            groups[size].append(index)
        self.batches = [group[i : i + batch_size] for group in groups.values() for i in range(0, len(group), batch_size)]

    def __len__(self) -> int:
        return len(self.batches)

    def __iter__(self) -> Iterator[list[int]]:
        return iter(self.batches)
