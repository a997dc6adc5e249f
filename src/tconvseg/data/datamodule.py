"""Lightning DataModule shared by every dataset family.

Hydra builds it from ``configs/data/*.yaml``: the dataset is a factory called as
``dataset(split=..., transforms=...)`` (a ``_partial_: true`` node), transform options are plain
mappings fed to :func:`~tconvseg.data.transforms.train_transforms` /
:func:`~tconvseg.data.transforms.eval_transforms`.
"""

from __future__ import annotations

import inspect
import random
from collections.abc import Callable, Iterator, Mapping
from typing import Any

import lightning
import numpy as np
import torch
from torch.utils.data import DataLoader, Sampler

from .base import SegmentationDataset, Transforms
from .errors import DatasetError
from .info import DatasetInfo, dataset_info
from .stats import WEIGHT_METHODS, median_frequency_weights
from .transforms import eval_transforms as build_eval_transforms
from .transforms import train_transforms as build_train_transforms

DEFAULT_SPLITS = {"train": "train", "val": "val", "test": "test", "predict": "test"}
_STAGE_ROLES = {"fit": ("train", "val"), "validate": ("val",), "test": ("test",), "predict": ("predict",)}


def collate_pairs(batch: list[tuple[torch.Tensor, torch.Tensor]]) -> tuple[torch.Tensor, torch.Tensor]:
    """Stack ``(image (3, H, W), mask (H, W))`` items into ``(images (N, 3, H, W), masks (N, H, W))``."""
    shapes = {(tuple(img.shape), tuple(mask.shape)) for img, mask in batch}
    if len(shapes) > 1:
        raise DatasetError(
            f"cannot batch items of different sizes {sorted(shapes)[:4]} (image, mask shapes); expected every "
            f"item of a batch to share one size. Resize to a fixed size, crop, or use batch size 1."
        )
    return torch.stack([img for img, _ in batch]), torch.stack([mask for _, mask in batch])


def _build_transforms(
    spec: Mapping[str, Any] | Transforms | None, builder: Callable[..., Transforms], **fixed: Any
) -> Transforms:
    """``spec`` as is when it is a transform, else ``builder(**spec, **fixed)`` with checked option names."""
    if spec is not None and not isinstance(spec, Mapping):
        return spec
    options = dict(spec or {})
    valid = set(inspect.signature(builder).parameters) - set(fixed)
    unknown = sorted(set(options) - valid)
    if unknown:
        raise ValueError(f"unknown {builder.__name__} option(s) {unknown}; expected some of {sorted(valid)}")
    return builder(**options, **fixed)


def epoch_seed(seed: int, epoch: int) -> int:
    """A seed for ``epoch`` of a run seeded with ``seed``: distinct per epoch, in numpy's range."""
    return (seed * 1_000_003 + epoch * 7_919 + 1) % 2**32


class EpochShuffleSampler(Sampler[int]):
    """The training order: a random permutation that depends only on ``(seed, epoch)``.

    Starting an epoch's iteration also seeds the main process's torch / numpy / ``random`` RNGs
    from ``(seed, epoch)``. Augmentations drawn in the main process and any randomness in the model
    then depend on the epoch number alone, not on how many epochs this process has run, so a run
    resumed from an end-of-epoch checkpoint continues exactly as the uninterrupted run would. This
    lives here, not in an ``on_train_epoch_start`` hook, because Lightning fetches the first batch
    of a fit call before that hook runs.

    The generator is shared with the :class:`DataLoader`, which draws its worker base seed from it,
    so non-persistent workers are seeded per epoch as well. Lightning calls :meth:`set_epoch`
    before each epoch; ``epoch`` is the first epoch (``trainer.current_epoch`` when resuming).
    """

    def __init__(self, num_items: int, seed: int, generator: torch.Generator, epoch: int = 0, seed_globals: bool = True) -> None:
        self.num_items = num_items
        self.seed = seed
        self.generator = generator
        self.seed_globals = seed_globals
        self.set_epoch(epoch)

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch
        self.generator.manual_seed(epoch_seed(self.seed, epoch))

    def __len__(self) -> int:
        return self.num_items

    def __iter__(self) -> Iterator[int]:
        value = epoch_seed(self.seed, self.epoch)
        self.generator.manual_seed(value)
        order = torch.randperm(self.num_items, generator=self.generator).tolist()
        if self.seed_globals:
            torch.manual_seed(value)
            np.random.seed(value)
            random.seed(value)
        return iter(order)


class SegmentationDataModule(lightning.LightningDataModule):
    """Train/val/test/predict loaders of ``(images float32 (N, 3, H, W), masks int64 (N, H, W))`` batches.

    Args:
        dataset: factory ``dataset(split=..., transforms=...) -> SegmentationDataset``.
        info: the dataset's :class:`DatasetInfo`, or its registered name (``"camvid"``, ...).
        train_transforms: options of :func:`train_transforms` (``ignore_index`` is filled from ``info``),
            or a ready joint transform.
        eval_transforms: options of :func:`eval_transforms`, or a ready joint transform (val/test/predict).
        batch_size: training batch size.
        eval_batch_size: val/test/predict batch size (default: ``batch_size``).
        num_workers: loader worker processes.
        persistent_workers: keep workers alive between epochs (only used when ``num_workers > 0``).
        pin_memory: page-locked batches for faster GPU copies; ``None`` = on when CUDA is available.
        splits: overrides of the role -> split-name map ``{"train", "val", "test", "predict"}``.
        drop_last: drop the last incomplete training batch.
        seed: seed of the training shuffle; ``None`` derives it from ``torch.initial_seed()``, which
            ``lightning.seed_everything`` sets, so seeded runs see the same order. The order of an
            epoch depends only on the seed and the epoch number (see :class:`EpochShuffleSampler`).
    """

    def __init__(
        self,
        dataset: Callable[..., SegmentationDataset],
        info: DatasetInfo | str,
        train_transforms: Mapping[str, Any] | Transforms | None = None,
        eval_transforms: Mapping[str, Any] | Transforms | None = None,
        batch_size: int = 8,
        eval_batch_size: int | None = None,
        num_workers: int = 0,
        persistent_workers: bool = True,
        pin_memory: bool | None = None,
        splits: Mapping[str, str] | None = None,
        drop_last: bool = False,
        seed: int | None = None,
    ) -> None:
        super().__init__()
        self.info = dataset_info(info) if isinstance(info, str) else info
        unknown = sorted(set(splits or {}) - set(DEFAULT_SPLITS))
        if unknown:
            raise ValueError(f"unknown splits key(s) {unknown}; expected some of {sorted(DEFAULT_SPLITS)}")
        for key, value in (("batch_size", batch_size), ("eval_batch_size", eval_batch_size)):
            if value is not None and value < 1:
                raise ValueError(f"{key}={value} is invalid; expected a positive integer")
        if num_workers < 0:
            raise ValueError(f"num_workers={num_workers} is invalid; expected >= 0")
        self.splits = {**DEFAULT_SPLITS, **dict(splits or {})}
        self._dataset_factory = dataset
        self._train_spec = dict(train_transforms or {}) if isinstance(train_transforms, Mapping) or train_transforms is None else None
        self._transforms = {
            "train": _build_transforms(train_transforms, build_train_transforms, ignore_index=self.info.ignore_index),
            "eval": _build_transforms(eval_transforms, build_eval_transforms),
        }
        self.batch_size = batch_size
        self.eval_batch_size = eval_batch_size or batch_size
        self.num_workers = num_workers
        self.persistent_workers = persistent_workers and num_workers > 0
        self.pin_memory = torch.cuda.is_available() if pin_memory is None else pin_memory
        self.drop_last = drop_last
        self.seed = seed
        self._datasets: dict[tuple[str, str], SegmentationDataset] = {}
        self._weights: dict[str, torch.Tensor] = {}

    @property
    def num_classes(self) -> int:
        return self.info.num_classes

    @property
    def ignore_index(self) -> int:
        return self.info.ignore_index

    def dataset(self, role: str) -> SegmentationDataset:
        """The dataset serving ``role`` (``train``/``val``/``test``/``predict``), built once and cached."""
        split = self.splits[role]
        kind = "train" if role == "train" else "eval"
        key = (split, kind)
        if key not in self._datasets:
            ds = self._dataset_factory(split=split, transforms=self._transforms[kind])
            if ds.info.num_classes != self.info.num_classes or ds.info.ignore_index != self.info.ignore_index:
                raise DatasetError(
                    f"dataset {type(ds).__name__} (split {split!r}) has {ds.info.num_classes} classes and "
                    f"ignore_index {ds.info.ignore_index}, but the datamodule's info {self.info.name!r} has "
                    f"{self.info.num_classes} and {self.info.ignore_index}; expected them to agree (check the config)."
                )
            self._datasets[key] = ds
        return self._datasets[key]

    def set_train_transforms(self, changes: Mapping[str, Any]) -> None:
        """Rebuild the training transforms with ``changes`` over the configured options; the train dataset
        uses them from its next item (a mid-run phase change, see :mod:`tconvseg.phases`).

        Persistent loader workers hold copies of the dataset that never see the change, so they are refused.
        """
        if self._train_spec is None:
            raise ValueError("train_transforms was given as a ready transform, not options; expected options to change")
        if self.persistent_workers:
            raise ValueError(
                f"cannot change the training transforms mid-run with data.num_workers={self.num_workers} persistent workers "
                "(they keep their own copy); expected data.persistent_workers=false (the change then starts with the "
                "next epoch) or data.num_workers=0"
            )
        spec = {**self._train_spec, **dict(changes)}
        self._transforms["train"] = _build_transforms(spec, build_train_transforms, ignore_index=self.info.ignore_index)
        self._train_spec = spec
        for (_, kind), dataset in self._datasets.items():
            if kind == "train":
                dataset.transforms = self._transforms["train"]

    def setup(self, stage: str | None = None) -> None:
        """Build (and thereby validate) the splits of ``stage``; ``None`` builds the ``fit`` splits."""
        stage = stage or "fit"
        if stage not in _STAGE_ROLES:
            raise ValueError(f"unknown stage {stage!r}; expected one of {sorted(_STAGE_ROLES)}")
        for role in _STAGE_ROLES[stage]:
            self.dataset(role)

    def class_weights(self, method: str = "median_frequency") -> torch.Tensor:
        """Loss weights of shape ``(num_classes,)`` from the train masks at label resolution.

        ``median_frequency``: see :func:`~tconvseg.data.stats.median_frequency_weights`; ``uniform``: ones.
        """
        if method not in WEIGHT_METHODS:
            raise ValueError(f"unknown class weight method {method!r}; expected one of {WEIGHT_METHODS}")
        if method not in self._weights:
            if method == "uniform":
                weights = torch.ones(self.num_classes)
            else:
                masks = self.dataset("train").raw_masks()
                weights = median_frequency_weights(masks, self.num_classes, self.info.class_names)
            self._weights[method] = weights
        return self._weights[method].clone()

    def _loader(self, role: str, batch_size: int, shuffle: bool, drop_last: bool = False) -> DataLoader:
        # A private generator drives shuffling and worker seeds without drawing from the global RNG,
        # so loaders never shift the model's random stream.
        generator = torch.Generator()
        sampler = None
        if shuffle:
            base = self.seed if self.seed is not None else torch.initial_seed()
            # The modulo keeps unseeded (random 64-bit) bases in range.
            # When resuming, Lightning has restored the epoch counter before it asks for this loader.
            epoch = self.trainer.current_epoch if self.trainer is not None else 0
            sampler = EpochShuffleSampler(len(self.dataset(role)), base % 2**63, generator, epoch=epoch)
        else:
            generator.manual_seed(0)
        return DataLoader(
            self.dataset(role),
            batch_size=batch_size,
            sampler=sampler,
            drop_last=drop_last,
            num_workers=self.num_workers,
            persistent_workers=self.persistent_workers,
            pin_memory=self.pin_memory,
            collate_fn=collate_pairs,
            generator=generator,
        )

    def train_dataloader(self) -> DataLoader:
        return self._loader("train", self.batch_size, shuffle=True, drop_last=self.drop_last)

    def val_dataloader(self) -> DataLoader:
        return self._loader("val", self.eval_batch_size, shuffle=False)

    def test_dataloader(self) -> DataLoader:
        return self._loader("test", self.eval_batch_size, shuffle=False)

    def predict_dataloader(self) -> DataLoader:
        return self._loader("predict", self.eval_batch_size, shuffle=False)
