"""Decoding image / label files into tensors, turning every failure into a `DatasetError`.

Images become ``uint8`` tensors of shape ``(3, H, W)``; label maps become ``uint8`` tensors of shape
``(H, W)`` holding class indices (and the ignore value). Checks shared by all datasets live here too.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from PIL import Image

from tconvseg.data.errors import DatasetError, DatasetNotFoundError

# Single-channel modes whose pixel values are the label indices themselves ("P" = palette index).
_LABEL_MODES = ("L", "P")


def _open(path: Path, what: str) -> Image.Image:
    """Open and fully decode ``path``; PIL decodes lazily, so ``load()`` surfaces truncation here."""
    if not path.is_file():
        raise DatasetNotFoundError(f"{what} file {path} does not exist (or is not a regular file).")
    try:
        with Image.open(path) as img:  # closes the file even when decoding fails; loaded pixels stay usable
            img.load()
    except Exception as exc:  # PIL raises OSError, SyntaxError, ValueError, zlib.error, ... by format
        raise DatasetError(
            f"cannot decode {what} file {path}: {type(exc).__name__}: {exc}. Expected a complete, readable "
            f"image file; the file is probably truncated or corrupt (re-download or re-extract the dataset)."
        ) from exc
    return img


def load_image(path: Path) -> torch.Tensor:
    """Decode an image file to an RGB ``uint8`` tensor of shape ``(3, H, W)``."""
    img = _open(path, "image").convert("RGB")
    # numpy copies single-threaded; torch's permute().contiguous() goes through the intra-op thread
    # pool, which measured 20x slower here whenever another process kept a core busy.
    return torch.from_numpy(np.ascontiguousarray(np.asarray(img).transpose(2, 0, 1)))


def load_label(path: Path) -> torch.Tensor:
    """Decode a label file to a ``uint8`` tensor of shape ``(H, W)`` holding raw label values.

    The file must be single-channel (mode ``L`` or palette mode ``P``): an RGB colour-coded label map
    cannot be read as class indices without a colour table, so it is rejected instead of guessed at.
    """
    img = _open(path, "label")
    if img.mode not in _LABEL_MODES:
        raise DatasetError(
            f"label file {path} has PIL mode {img.mode!r} ({len(img.getbands())} channel(s)); expected a "
            f"single-channel 8-bit image (mode 'L' or palette mode 'P') whose pixel values are class indices."
        )
    return torch.from_numpy(np.array(img, dtype=np.uint8))


def check_same_size(image: torch.Tensor, label: torch.Tensor, image_path: Path, label_path: Path) -> None:
    """Raise if the ``(3, H, W)`` image and ``(H, W)`` label disagree on ``H, W``."""
    if tuple(image.shape[-2:]) != tuple(label.shape[-2:]):
        ih, iw = image.shape[-2:]
        lh, lw = label.shape[-2:]
        raise DatasetError(
            f"label {label_path} is {lw}x{lh} (WxH) but its image {image_path} is {iw}x{ih}; expected the "
            f"label map to have exactly the image's size."
        )


def check_label_values(label: torch.Tensor, allowed: torch.Tensor, path: Path, expected: str) -> None:
    """Raise if ``label`` holds a value whose entry in the boolean table ``allowed`` (256,) is False.

    ``expected`` describes the valid values for the message, e.g. ``"0..10 or 11 (void)"``.
    """
    present = torch.from_numpy(label_histogram(label) > 0)
    bad = torch.nonzero(present & ~allowed).flatten().tolist()
    if bad:
        raise DatasetError(
            f"label file {path} contains value(s) {bad[:10]}{' ...' if len(bad) > 10 else ''} outside the "
            f"valid range; expected only {expected}."
        )


def label_histogram(label: torch.Tensor) -> np.ndarray:
    """Pixel count of each value 0..255 in a ``uint8`` label map, as an ``int64`` array of shape ``(256,)``."""
    # Single-threaded numpy, for the same reason as in load_image; torch.bincount also needs an int64 copy.
    return np.bincount(label.numpy().ravel(), minlength=256)


def allowed_table(values: list[int] | range) -> torch.Tensor:
    """Boolean lookup table of shape ``(256,)``, True at each of ``values``."""
    table = torch.zeros(256, dtype=torch.bool)
    table[list(values)] = True
    return table
