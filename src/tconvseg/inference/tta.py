"""Test-time augmentation: average the class probabilities of an image's mirror image and rescaled copies.

`TestTimeAugmentation` wraps a network once, from the ``tta`` / ``tta_scales`` options (MMSegmentation's
``SegTTAModel`` is the model); the training system's test and predict steps call it (``SegmentationSystem.tta``),
hence ``tconvseg-eval tta=...`` and ``tconvseg-predict tta=...``.

Modes: ``none`` (the network itself), ``flip`` (the image and its mirror image),
``multiscale`` (the image resized by each factor of ``scales``), ``multiscale_flip`` (each
resized copy and its mirror image: ``2 * len(scales)`` passes). Probabilities are averaged at the
input's size; the resizing happens around the network, never inside it.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from typing import Any

import torch
import torch.nn.functional as F

#: Accepted values of the ``tta`` option.
TTA_MODES = ("none", "flip", "multiscale", "multiscale_flip")

#: Default ``tta_scales``: the CamVid recipe's training range of random scales, [0.75, 1.5], in steps of 0.25.
DEFAULT_SCALES = (0.75, 1.0, 1.25, 1.5)


def check_tta(mode: str) -> str:
    """``mode`` if it is one of `TTA_MODES`, else a ``ValueError`` naming the option."""
    if mode not in TTA_MODES:
        raise ValueError(f"tta={mode!r} is not a test-time augmentation; expected one of {', '.join(TTA_MODES)} (e.g. tta=flip)")
    return mode


def check_tta_scales(scales: Iterable[float] | float | None) -> tuple[float, ...]:
    """``scales`` as a tuple of floats if it is a factor > 0 or a non-empty list of them, else a ``ValueError`` naming the option."""
    if scales is None or isinstance(scales, (str, bytes)):
        values: list = []
    elif isinstance(scales, (int, float)):
        values = [scales]
    else:
        values = list(scales)
    if not values or not all(isinstance(s, (int, float)) and not isinstance(s, bool) and s > 0 for s in values):
        shown = scales if scales is None or isinstance(scales, (str, bytes)) else values
        raise ValueError(
            f"tta_scales={shown!r} is invalid; expected a non-empty list of resize factors > 0 for the "
            f"multiscale modes, e.g. tta_scales=[0.75,1.0,1.25,1.5]"
        )
    return tuple(float(s) for s in values)


def tta_options(options: Mapping[str, Any]) -> tuple[str, tuple[float, ...]]:
    """``(mode, scales)`` from the ``tta`` and ``tta_scales`` entries of an entry point's config, both checked."""
    return check_tta(options.get("tta", "none")), check_tta_scales(options.get("tta_scales", DEFAULT_SCALES))


def flip_probabilities(net: Callable[[torch.Tensor], torch.Tensor], images: torch.Tensor) -> torch.Tensor:
    """``(softmax(net(x)) + hflip(softmax(net(hflip(x))))) / 2`` for ``images (N, C, H, W)`` → ``(N, K, H, W)``.

    Both passes run as one batch of ``2N`` images.
    """
    n = images.shape[0]
    logits = net(torch.cat([images, images.flip(-1)]))
    probs = logits.float().softmax(dim=1)
    return (probs[:n] + probs[n:].flip(-1)) / 2


def multiscale_probabilities(
    net: Callable[[torch.Tensor], torch.Tensor], images: torch.Tensor, scales: Iterable[float], flip: bool = False
) -> torch.Tensor:
    """Mean over ``scales`` of the class probabilities of ``images`` resized by each factor → ``(N, K, H, W)``.

    Each copy is ``round(H * s) x round(W * s)`` (bilinear, antialiased when shrinking; a factor of 1
    is the image itself), its probabilities (with its mirror image's when ``flip``) are resized back
    to ``H x W`` (bilinear) before averaging. The network must accept every resized size.
    """
    height, width = images.shape[-2:]
    total = None
    factors = check_tta_scales(scales)
    for scale in factors:
        size = (max(1, round(height * scale)), max(1, round(width * scale)))
        resized = images
        if size != (height, width):
            resized = F.interpolate(images, size=size, mode="bilinear", align_corners=False, antialias=scale < 1)
        probs = flip_probabilities(net, resized) if flip else net(resized).float().softmax(dim=1)
        if size != (height, width):
            probs = F.interpolate(probs, size=(height, width), mode="bilinear", align_corners=False)
        total = probs if total is None else total + probs
    return total / len(factors)


def tta_logits(
    net: Callable[[torch.Tensor], torch.Tensor], images: torch.Tensor, mode: str = "none", scales: Iterable[float] = DEFAULT_SCALES
) -> torch.Tensor:
    """Scores ``(N, K, H, W)`` whose softmax is the (augmented) class probability.

    ``none``: ``net(images)``. The other modes: the log of the averaged probabilities
    (`flip_probabilities`, `multiscale_probabilities` over ``scales``), so the argmax,
    the softmax and a cross-entropy on them all see the averaged probabilities.
    """
    mode = check_tta(mode)
    if mode == "none":
        return net(images)
    # flip is multiscale_flip at the input's own size only (no resizing at a factor of 1).
    probs = multiscale_probabilities(net, images, scales if mode.startswith("multiscale") else (1.0,), flip=mode.endswith("flip"))
    # The floor keeps log() finite where every pass gives a class probability that underflows to 0.
    return probs.clamp_min(torch.finfo(torch.float32).tiny).log()


class TestTimeAugmentation:
    """A network wrapped with one test-time augmentation: ``tta(images (N, C, H, W)) -> scores (N, K, H, W)``.

    The scores' softmax is the averaged class probability (`tta_logits`); ``mode="none"`` is the
    network itself. Built once, checked once: a bad mode or scale fails here, naming the option.

    Args:
        net: the network (or any callable from images to logits).
        mode: one of `TTA_MODES`.
        scales: resize factors of the multiscale modes.
    """

    __test__ = False  # not a pytest test class, whatever its name

    def __init__(self, net: Callable[[torch.Tensor], torch.Tensor], mode: str = "none", scales: Iterable[float] = DEFAULT_SCALES) -> None:
        self.net = net
        self.mode = check_tta(mode)
        self.scales = check_tta_scales(scales)

    def __call__(self, images: torch.Tensor) -> torch.Tensor:
        return tta_logits(self.net, images, self.mode, self.scales)

    def record(self) -> dict[str, Any]:
        """What a report says it scored with: the mode, and the scales where the mode uses them."""
        record: dict[str, Any] = {"mode": self.mode}
        if self.mode.startswith("multiscale"):
            record["scales"] = list(self.scales)
        return record
