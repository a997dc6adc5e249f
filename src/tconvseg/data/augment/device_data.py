"""Training data for ``data.augment_on=device``: raw uint8 items, and the whole split resident on the device.

With the augmentation on the device (`tconvseg.data.augment.batch_augment.BatchAugment`), the loader only
has to deliver raw pixels. `RawItems` serves them as fixed-size ``uint8`` tensors (a quarter of
the float32 bytes to copy); `DeviceCache` goes further and keeps every training pair on the
device, so that a batch is an index gather: the loader yields index tensors, no worker decodes or copies.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable, Mapping
from typing import Any

import torch
from torch.utils.data import Dataset

from tconvseg.data.augment.batch_augment import SUPPORTED, BatchAugment
from tconvseg.data.datasets.base import SegmentationDataset
from tconvseg.data.errors import DatasetError

log = logging.getLogger(__name__)

CACHE_MODES = ("auto", True, False)


class RawItems(Dataset[tuple[torch.Tensor, torch.Tensor]]):
    """Item ``i`` of ``dataset`` untransformed: ``(image uint8 (3, H, W), label uint8 (H, W))``."""

    def __init__(self, dataset: SegmentationDataset) -> None:
        self.dataset = dataset

    def __len__(self) -> int:
        return len(self.dataset)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, torch.Tensor]:
        image, label = self.dataset.load_pair(index)
        return image, label


class IndexItems(Dataset[int]):
    """``0..n-1``: what the loader yields when the pairs live on the device (collated to an int64 tensor)."""

    def __init__(self, n: int) -> None:
        self.n = n

    def __len__(self) -> int:
        return self.n

    def __getitem__(self, index: int) -> int:
        return index


class DeviceCache:
    """Every pair of a training split stacked as ``uint8`` tensors, moved to the training device once.

    Args:
        dataset: the split; every item must have one size (else `DatasetError` naming two sizes).
    """

    def __init__(self, dataset: SegmentationDataset) -> None:
        pairs = [dataset.load_pair(i) for i in range(len(dataset))]
        sizes = sorted({tuple(image.shape) for image, _ in pairs})
        if len(sizes) > 1:
            raise DatasetError(
                f"data.device_cache=true needs one image size for the whole training split; found {len(sizes)} sizes, e.g. "
                f"{sizes[:2]}. Expected images of one size, or data.device_cache=false (items then go through the loader)"
            )
        self.images = torch.stack([image for image, _ in pairs])
        self.masks = torch.stack([label for _, label in pairs])

    @property
    def nbytes(self) -> int:
        return self.images.numel() * self.images.element_size() + self.masks.numel() * self.masks.element_size()

    def gather(self, indices: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """``(images uint8 (B, 3, H, W), masks uint8 (B, H, W))`` of ``indices``, on ``indices``' device."""
        if self.images.device != indices.device:
            self.images, self.masks = self.images.to(indices.device), self.masks.to(indices.device)
        return self.images.index_select(0, indices), self.masks.index_select(0, indices)


def free_bytes(device: torch.device) -> int:
    """Free memory of ``device``: CUDA's ``mem_get_info``, else the host's available physical memory."""
    if device.type == "cuda":
        return int(torch.cuda.mem_get_info(device)[0])
    return int(os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE"))


def use_device_cache(mode: str | bool, nbytes: Callable[[], int], device: torch.device, fraction: float) -> bool:
    """Whether the training split lives on ``device``: ``true``/``false`` as given; ``auto``: when its bytes
    fit in ``fraction`` of the device's free memory."""
    if mode not in CACHE_MODES:
        raise ValueError(f"data.device_cache={mode!r} is invalid; expected auto, true or false")
    if mode != "auto":
        return bool(mode)
    return nbytes() <= fraction * free_bytes(device)


class DeviceTraining:
    """What ``data.augment_on=device`` adds to the datamodule: the batch augmentation and the optional cache.

    Args:
        spec: the ``data.train_transforms`` options (only `tconvseg.data.augment.batch_augment.SUPPORTED` ones).
        ignore_index: void label.
        cache_mode: ``data.device_cache``: ``"auto"``, ``True`` or ``False``.
        fraction: ``data.device_cache_fraction``: the share of free device memory ``auto`` may fill.
    """

    def __init__(self, spec: Mapping[str, Any] | None, ignore_index: int, cache_mode: str | bool, fraction: float) -> None:
        if cache_mode not in CACHE_MODES:
            raise ValueError(f"data.device_cache={cache_mode!r} is invalid; expected auto, true or false")
        if not 0 < fraction <= 1:
            raise ValueError(f"data.device_cache_fraction={fraction!r} is invalid; expected a share of free memory in (0, 1]")
        self.ignore_index, self.cache_mode, self.fraction = ignore_index, cache_mode, fraction
        self.cache: DeviceCache | None = None
        self.augment = self._build(spec)

    def set_spec(self, spec: Mapping[str, Any]) -> None:
        """New augmentation options (a transform phase); the next batch uses them."""
        self.augment = self._build(spec)

    def _build(self, spec: Mapping[str, Any] | None) -> BatchAugment:
        if spec is None:
            raise ValueError("data.augment_on=device needs data.train_transforms as options, not a ready transform")
        unsupported = sorted(k for k, v in spec.items() if k not in SUPPORTED and v not in (None, 0, 0.0))
        if unsupported:
            raise ValueError(
                f"data.train_transforms {unsupported} have no device version; expected data.augment_on=loader for them, or only "
                f"{list(SUPPORTED)}"
            )
        return BatchAugment(ignore_index=self.ignore_index, **{k: v for k, v in spec.items() if k in SUPPORTED})

    def items(self, dataset: SegmentationDataset, device: torch.device, collate: Callable[..., Any]) -> tuple[Any, Callable[..., Any] | None]:
        """The loader's dataset and collate function: indices when the split lives on ``device``, else raw pairs."""
        if self.cache is None and self._wants_cache(dataset, device):
            try:
                self.cache = DeviceCache(dataset)
            except DatasetError:
                if self.cache_mode is True:
                    raise
                log.info("data.device_cache=auto: the training images differ in size, so they go through the loader")
                return RawItems(dataset), collate
            log.info("Training split on %s: %d pairs, %.0f MB (data.device_cache=%s)", device, len(dataset), self.cache.nbytes / 1e6, self.cache_mode)
        return (IndexItems(len(dataset)), None) if self.cache is not None else (RawItems(dataset), collate)

    def _wants_cache(self, dataset: SegmentationDataset, device: torch.device) -> bool:
        if self.cache_mode != "auto":
            return bool(self.cache_mode)
        first = dataset.load_pair(0)
        estimate = len(dataset) * sum(t.numel() * t.element_size() for t in first)
        return use_device_cache("auto", lambda: estimate, device, self.fraction)

    def __call__(self, batch: Any) -> tuple[torch.Tensor, torch.Tensor]:
        """Augment a transferred batch: ``(images uint8, masks)`` or, from the cache, an index tensor."""
        images, masks = self.cache.gather(batch) if isinstance(batch, torch.Tensor) and self.cache is not None else batch
        return self.augment(images, masks)
