"""Test-time augmentation: average the class probabilities of an image and its mirror image.

Used by the training system's test / predict steps (``SegmentationSystem.tta``), hence by
``tconvseg-eval tta=flip`` and ``tconvseg-predict tta=flip``.
"""

from __future__ import annotations

from collections.abc import Callable

import torch

#: Accepted values of the ``tta`` option.
TTA_MODES = ("none", "flip")


def check_tta(mode: str) -> str:
    """``mode`` if it is one of :data:`TTA_MODES`, else a ``ValueError`` naming the option."""
    if mode not in TTA_MODES:
        raise ValueError(f"tta={mode!r} is not a test-time augmentation; expected one of {', '.join(TTA_MODES)} (e.g. tta=flip)")
    return mode


def flip_probabilities(net: Callable[[torch.Tensor], torch.Tensor], images: torch.Tensor) -> torch.Tensor:
    """``(softmax(net(x)) + hflip(softmax(net(hflip(x))))) / 2`` for ``images (N, C, H, W)`` → ``(N, K, H, W)``.

    Both passes run as one batch of ``2N`` images.
    """
    n = images.shape[0]
    logits = net(torch.cat([images, images.flip(-1)]))
    probs = logits.float().softmax(dim=1)
    return (probs[:n] + probs[n:].flip(-1)) / 2


def tta_logits(net: Callable[[torch.Tensor], torch.Tensor], images: torch.Tensor, mode: str = "none") -> torch.Tensor:
    """Scores ``(N, K, H, W)`` whose softmax is the (augmented) class probability.

    ``none``: ``net(images)``. ``flip``: the log of :func:`flip_probabilities`, so the argmax, the
    softmax and a cross-entropy on them all see the averaged probabilities.
    """
    if check_tta(mode) == "none":
        return net(images)
    # The floor keeps log() finite where both passes give a class probability that underflows to 0.
    return flip_probabilities(net, images).clamp_min(torch.finfo(torch.float32).tiny).log()
