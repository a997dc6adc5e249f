"""What the demo page shows for one uploaded file: the overlay, each class's share of the pixels, or why it was refused.

No web library here: `view` is a plain function of a file and a `DemoModel` (testable without a server or a
browser), and `shares_html` / `message_html` render its result as HTML fragments. ``tconvseg.tasks.demo``
puts them on a Gradio page and serves it.
"""

from __future__ import annotations

import html
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from tconvseg.data.augment.transforms import IMAGENET_MEAN, IMAGENET_STD, eval_transforms
from tconvseg.data.datasets.images import ImageFilesDataset, read_size
from tconvseg.data.datasets.info import DatasetInfo
from tconvseg.data.errors import DatasetError
from tconvseg.inference.visualize import denormalize, overlay
from tconvseg.training.system import SegmentationSystem

#: What the page says before anything is dropped (and after the file is removed).
PROMPT = "Drop an image (PNG, JPEG, BMP, TIFF or WebP) to segment it."


@dataclass(frozen=True)
class DemoModel:
    """A restored system in eval mode and how to feed it: the classes, the normalisation, the limits.

    ``mean`` / ``std``: the normalisation of the training data's eval transforms; ``scale``: resize factor of
    each image before the network (``None``: its own size); ``max_pixels``: larger images are refused;
    ``alpha``: weight of the class colours in the overlay.
    """

    system: SegmentationSystem
    info: DatasetInfo
    mean: Sequence[float] | None = IMAGENET_MEAN
    std: Sequence[float] | None = IMAGENET_STD
    scale: float | None = None
    max_pixels: int = 178_956_970
    alpha: float = 0.5
    device: str = "cpu"


@dataclass(frozen=True)
class ClassShare:
    """One class of the legend: its name, colour ``(r, g, b)``, and its pixels in the prediction (count and percent)."""

    name: str
    colour: tuple[int, int, int]
    pixels: int
    percent: float


@dataclass(frozen=True)
class View:
    """The page's content for one file: ``overlay (H, W, 3) uint8`` and ``labels (H, W)`` with ``shares`` (one per
    class, in class order, percents summing to 100), or only ``message`` (why nothing was drawn)."""

    overlay: np.ndarray | None = None
    labels: np.ndarray | None = None
    shares: tuple[ClassShare, ...] = ()
    message: str | None = None

    @property
    def refused(self) -> bool:
        return self.message is not None


def view(source: str | Path | None, model: DemoModel) -> View:
    """Segment the image file ``source`` with ``model``, or say in one paragraph why it cannot be.

    Never raises for a bad file: not an image, an image above ``model.max_pixels`` (refused from its
    header, before decoding) or a corrupt one come back as ``View(message=...)`` naming the file by its
    name alone (an upload's temporary folder means nothing to the user). ``None`` (nothing dropped yet)
    gives the prompt as the message.
    """
    if source is None:
        return View(message=PROMPT)
    path = Path(source)
    try:
        height, width = read_size(path)
    except DatasetError as err:
        return View(message=f"{path.name} is not an image this page can read: {_reason(err, path)}. {PROMPT}")
    if height * width > model.max_pixels:
        return View(message=(
            f"{path.name} is {width}x{height} = {height * width:,} pixels, above this page's limit of max_image_pixels="
            f"{model.max_pixels:,}; drop a smaller image, or start tconvseg-demo again with a larger max_image_pixels=..."
        ))
    try:
        image = ImageFilesDataset([path], eval_transforms(scale=model.scale, mean=model.mean, std=model.std),
                                  max_pixels=model.max_pixels)[0]["image"]
    except DatasetError as err:
        return View(message=f"{path.name} could not be decoded: {_reason(err, path)}. Expected a complete image file.")
    with torch.no_grad():
        labels = model.system.predict_step(image[None].to(model.device), 0)[0].cpu().numpy()
    blended = overlay(denormalize(image, model.mean, model.std), labels, model.info, model.alpha)
    return View(overlay=blended, labels=labels, shares=class_shares(labels, model.info))


def class_shares(labels: np.ndarray, info: DatasetInfo) -> tuple[ClassShare, ...]:
    """Each class's pixels in ``labels (H, W)`` (class indices), in class order; the percents sum to 100."""
    counts = np.bincount(labels.ravel().astype(np.int64), minlength=info.num_classes)[: info.num_classes]
    total = max(int(counts.sum()), 1)
    return tuple(
        ClassShare(name, tuple(int(c) for c in colour), int(n), 100.0 * int(n) / total)  # type: ignore[arg-type]
        for name, colour, n in zip(info.class_names, info.palette, counts)
    )


def shares_html(info: DatasetInfo, shares: Sequence[ClassShare] = ()) -> str:
    """The legend as an HTML table: per class a colour swatch, the name and, when ``shares`` are given, its share of
    the pixels as a percentage and a bar. Without shares (nothing segmented yet) the share cells are empty."""
    if shares and len(shares) != info.num_classes:
        raise ValueError(f"{len(shares)} shares for {info.num_classes} classes; expected one per class, in class order")
    rows = []
    for i, (name, colour) in enumerate(zip(info.class_names, info.palette)):
        share = shares[i] if shares else None
        rgb = "rgb({}, {}, {})".format(*colour)
        percent = f"{share.percent:.1f} %" if share else ""
        bar = f'<div class="tcs-bar" style="width:{share.percent:.1f}%;background:{rgb}"></div>' if share and share.pixels else ""
        rows.append(
            f'<tr class="tcs-class"><td><span class="tcs-swatch" style="background:{rgb}"></span></td>'
            f'<td class="tcs-name">{html.escape(name)}</td><td class="tcs-percent">{percent}</td>'
            f'<td class="tcs-bar-cell">{bar}</td></tr>'
        )
    caption = "share of the image's pixels" if shares else "classes"
    return (
        f'<table class="tcs-shares"><caption>{caption}</caption>'
        '<thead><tr><th></th><th>class</th><th>share</th><th></th></tr></thead>'
        f'<tbody>{"".join(rows)}</tbody></table>'
    )


def message_html(result: View) -> str:
    """The page's message line: the refusal (escaped, marked as one) or, for a segmented image, its size."""
    if result.message is None:
        h, w = result.labels.shape if result.labels is not None else (0, 0)
        return f'<p class="tcs-ok">Segmented {w}x{h} pixels.</p>'
    kind = "tcs-prompt" if result.message == PROMPT else "tcs-refused"
    return f'<p class="{kind}">{html.escape(result.message)}</p>'


#: Styles of the fragments above (the page adds them once).
CSS = """
.tcs-shares { border-collapse: collapse; }
.tcs-shares td, .tcs-shares th { padding: 2px 8px; text-align: left; }
.tcs-swatch { display: inline-block; width: 1.2em; height: 1.2em; border: 1px solid #000; vertical-align: middle; }
.tcs-percent { text-align: right !important; font-variant-numeric: tabular-nums; }
.tcs-bar-cell { width: 40%; min-width: 6em; }
.tcs-bar { height: 0.9em; outline: 1px solid #0004; }
.tcs-refused { color: #b00020; font-weight: 600; }
"""


def _reason(err: DatasetError, path: Path) -> str:
    """PIL's own words behind a `DatasetError` of `read_size` / `load_image`, the upload's folder left out."""
    cause = err.__cause__
    text = f"{type(cause).__name__}: {cause}" if cause is not None else str(err)
    return text.replace(str(path), path.name)
