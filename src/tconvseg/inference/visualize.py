"""Pictures of segmentations: class colours, overlays, a legend and image | truth | prediction grids.

Shared by prediction (``<stem>.png``, ``<stem>_overlay.jpg``, ``legend.png``), evaluation
(``samples_*.png``) and the training callback. Colours come from a `DatasetInfo`. Arrays
are numpy ``uint8``: images ``(H, W, 3)`` RGB, label maps ``(H, W)`` of class indices.
"""

from __future__ import annotations

import csv
import logging
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch
from PIL import Image, ImageDraw, ImageFont
from torchmetrics.classification import MulticlassConfusionMatrix

from tconvseg.data.augment.transforms import IMAGENET_MEAN, IMAGENET_STD
from tconvseg.data.datasets.info import DatasetInfo

log = logging.getLogger(__name__)

_GAP = 4  # pixels between the pictures of a grid
_TEXT = 14  # height of a caption line


def color_table(info: DatasetInfo) -> np.ndarray:
    """``(256, 3) uint8``: the palette colour of each class index, the ignore colour for every other value."""
    table = np.tile(np.asarray(info.ignore_color, dtype=np.uint8), (256, 1))
    table[: info.num_classes] = np.asarray(info.palette, dtype=np.uint8)
    return table


def colorize(labels: np.ndarray | torch.Tensor, info: DatasetInfo) -> np.ndarray:
    """Label map ``(H, W)`` → RGB ``(H, W, 3) uint8`` in the class colours (ignore / unknown values: ``ignore_color``)."""
    labels = _numpy(labels).astype(np.int64)
    return color_table(info)[np.clip(labels, 0, 255)]


def palette_png(labels: np.ndarray | torch.Tensor, info: DatasetInfo) -> Image.Image:
    """A palette (``"P"``) image whose pixel values are the class indices and whose palette holds their colours.

    Reading it back with PIL (``np.array(Image.open(path))``) gives the label map itself.
    """
    labels = _numpy(labels)
    if labels.min(initial=0) < 0 or labels.max(initial=0) > 255:
        raise ValueError(f"label values {int(labels.min())}..{int(labels.max())} do not fit a palette PNG; expected 0..255")
    image = Image.fromarray(labels.astype(np.uint8), mode="L")
    image.putpalette(color_table(info).flatten().tolist())
    return image


def overlay(image: np.ndarray, labels: np.ndarray | torch.Tensor, info: DatasetInfo, alpha: float = 0.5) -> np.ndarray:
    """``image (H, W, 3) uint8`` blended with the class colours of ``labels (H, W)``: ``(1 - alpha) * image + alpha * colour``."""
    colours = colorize(labels, info)
    if image.shape != colours.shape:
        raise ValueError(f"image of shape {image.shape} and labels of shape {colours.shape[:2]} differ in size; expected the same H x W")
    blended = (1.0 - alpha) * image.astype(np.float32) + alpha * colours.astype(np.float32)
    return np.clip(np.rint(blended), 0, 255).astype(np.uint8)


def denormalize(
    image: torch.Tensor, mean: Sequence[float] | None = IMAGENET_MEAN, std: Sequence[float] | None = IMAGENET_STD
) -> np.ndarray:
    """A network input ``(3, H, W)`` float (normalised with ``mean`` / ``std``) back to ``(H, W, 3) uint8``."""
    image = image.detach().float().cpu()
    if mean is not None and std is not None:
        image = image * torch.tensor(std).view(3, 1, 1) + torch.tensor(mean).view(3, 1, 1)
    return (image.clamp(0, 1) * 255).round().to(torch.uint8).permute(1, 2, 0).numpy()


def legend(info: DatasetInfo, class_names: Sequence[str] | None = None) -> Image.Image:
    """One row per class: a colour swatch and the class name (plus the ignore colour when it is drawn)."""
    names = list(class_names or info.class_names)
    entries = list(zip(names, info.palette)) + [(f"ignore ({info.ignore_index})", info.ignore_color)]
    font = ImageFont.load_default()
    row = _TEXT + 6
    width = 28 + max(int(ImageDraw.Draw(Image.new("RGB", (1, 1))).textlength(name, font=font)) for name, _ in entries) + 8
    picture = Image.new("RGB", (width, row * len(entries) + 4), "white")
    draw = ImageDraw.Draw(picture)
    for i, (name, colour) in enumerate(entries):
        top = 4 + i * row
        draw.rectangle([4, top, 4 + _TEXT + 4, top + _TEXT], fill=tuple(colour), outline="black")
        draw.text((28, top + 1), name, fill="black", font=font)
    return picture


def shrink(picture: np.ndarray, max_side: int, smooth: bool) -> np.ndarray:
    """``picture (H, W, 3) uint8`` scaled down so that its longer side is at most ``max_side`` (as it is if it fits).

    ``smooth``: bilinear (photos); otherwise nearest, so that class-colour maps keep only their colours.
    """
    h, w = picture.shape[:2]
    if max(h, w) <= max_side:
        return picture
    size = (max(1, round(w * max_side / max(h, w))), max(1, round(h * max_side / max(h, w))))
    method = Image.Resampling.BILINEAR if smooth else Image.Resampling.NEAREST
    return np.asarray(Image.fromarray(picture).resize(size, method))


def grid(
    rows: Sequence[Sequence[np.ndarray]], titles: Sequence[str] = ("image", "truth", "prediction"), max_side: int | None = 1024,
) -> Image.Image:
    """Pictures ``(H_i, W_i, 3) uint8`` laid out one row per sample, one column per title, with captions.

    Rows may differ in size; each cell is placed top-left in a cell as large as the largest picture.
    Pictures longer than ``max_side`` pixels are scaled down to it (the first column smoothly, the
    label maps by nearest neighbour), so a grid of 100-megapixel images stays a picture one can open;
    ``None`` keeps every picture at its size.
    """
    if not rows:
        raise ValueError("grid needs at least one row of pictures")
    columns = len(titles)
    if any(len(r) != columns for r in rows):
        raise ValueError(f"every grid row needs {columns} pictures ({', '.join(titles)})")
    if max_side is not None:
        rows = [[shrink(p, max_side, smooth=c == 0) for c, p in enumerate(r)] for r in rows]
    cell_h = max(p.shape[0] for r in rows for p in r)
    cell_w = max(p.shape[1] for r in rows for p in r)
    width = columns * cell_w + (columns + 1) * _GAP
    height = _TEXT + _GAP + len(rows) * (cell_h + _GAP) + _GAP
    picture = Image.new("RGB", (width, height), "white")
    draw = ImageDraw.Draw(picture)
    for c, title in enumerate(titles):
        draw.text((_GAP + c * (cell_w + _GAP), 2), title, fill="black", font=ImageFont.load_default())
    for r, pictures in enumerate(rows):
        for c, array in enumerate(pictures):
            picture.paste(Image.fromarray(array), (_GAP + c * (cell_w + _GAP), _TEXT + _GAP + r * (cell_h + _GAP)))
    return picture


def sample_rows(
    images: torch.Tensor, truths: torch.Tensor, predictions: torch.Tensor, info: DatasetInfo,
    mean: Sequence[float] | None = IMAGENET_MEAN, std: Sequence[float] | None = IMAGENET_STD,
) -> list[list[np.ndarray]]:
    """``[image, truth, prediction]`` pictures of a batch: images ``(N, 3, H, W)`` normalised, label maps ``(N, H', W')``.

    When the labels are larger than the network input (scoring at label resolution), the image is
    resized to the label size with PIL so that the three pictures line up.
    """
    rows = []
    for image, truth, prediction in zip(images, truths, predictions):
        picture = denormalize(image, mean, std)
        h, w = truth.shape[-2:]
        if picture.shape[:2] != (h, w):
            picture = np.asarray(Image.fromarray(picture).resize((int(w), int(h)), Image.Resampling.BILINEAR))
        rows.append([picture, colorize(truth, info), colorize(prediction, info)])
    return rows


def write_confusion_csv(matrix: torch.Tensor, class_names: Sequence[str], path: Path) -> None:
    """``matrix (K, K)`` as CSV: a header ``truth \\ prediction,<names>``, then one row per true class of pixel counts."""
    counts = matrix.detach().cpu().to(torch.int64).tolist()
    with open(path, "w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["truth \\ prediction", *class_names])
        writer.writerows([name, *row] for name, row in zip(class_names, counts))


def write_confusion_png(matrix: torch.Tensor, class_names: Sequence[str], path: Path) -> bool:
    """torchmetrics' plot of ``matrix (K, K)`` (rows: truth, columns: prediction), normalised per true class.

    Returns False (with a warning) when matplotlib, the optional ``plots`` extra, is missing.
    """
    try:
        import matplotlib

        matplotlib.use("Agg")  # files only, never a window
        import matplotlib.pyplot as plt
    except ImportError:
        log.warning("matplotlib is not installed, so %s is not drawn (the CSV is written); install it with pip install 'tconvseg[plots]'", path.name)
        return False
    rows = matrix.detach().cpu().double()
    share = rows / rows.sum(dim=1, keepdim=True).clamp_min(1)  # each true class sums to 1: readable whatever its size
    k = len(class_names)
    fig, ax = plt.subplots(figsize=(2 + 0.6 * k, 1.5 + 0.6 * k))
    MulticlassConfusionMatrix(num_classes=k).plot(val=share.round(decimals=2), ax=ax, labels=list(class_names), add_text=k <= 25)
    ax.set_title("share of each true class's pixels")
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return True


def _numpy(labels: np.ndarray | torch.Tensor) -> np.ndarray:
    return labels.detach().cpu().numpy() if isinstance(labels, torch.Tensor) else np.asarray(labels)
