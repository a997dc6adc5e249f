"""Lightning DataModule shared by every dataset family.

Hydra builds it from ``configs/data/*.yaml``: the dataset is a factory called as
``dataset(split=..., transforms=...)`` (a ``_partial_: true`` node), transform options are plain
mappings fed to `tconvseg.data.augment.transforms.train_transforms` /
`tconvseg.data.augment.transforms.eval_transforms`.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Mapping
from typing import Any

import lightning
import torch
from torch.utils.data import DataLoader, Sampler

from tconvseg.data.augment.class_mix import check_class_mix, class_mix
from tconvseg.data.augment.device_data import DeviceTraining, IndexItems
from tconvseg.data.augment.transforms import eval_transforms as build_eval_transforms
from tconvseg.data.augment.transforms import train_transforms as build_train_transforms
from tconvseg.data.augment.transforms import transforms_from_options
from tconvseg.data.datasets.base import SegmentationDataset, Transforms, collate_pairs
from tconvseg.data.datasets.info import DatasetInfo, dataset_info
from tconvseg.data.datasets.stats import class_weights_by
from tconvseg.data.errors import DatasetError
from tconvseg.data.splits.holdout import HOLDOUT_SPLIT, HoldoutOptions
from tconvseg.data.splits.pooled import PooledView
from tconvseg.data.splits.samplers import EpochShuffleSampler, ShardSampler, trainer_shard
from tconvseg.data.splits.split_names import check_train_excludes_held_out, check_train_splits_match_pool, split_map

_STAGE_ROLES = {"fit": ("train", "val"), "validate": ("val",), "test": ("test",), "predict": ("predict",)}


class SegmentationDataModule(lightning.LightningDataModule):
    """Train/val/test/predict loaders of ``(images float32 (N, 3, H, W), masks int64 (N, H, W))`` batches.

    Args:
        dataset: factory ``dataset(split=..., transforms=...) -> SegmentationDataset``.
        info: the dataset's `DatasetInfo`, or its registered name (``"camvid"``, ...).
        train_transforms: options of `train_transforms` (``ignore_index`` from ``info``), or a ready joint transform.
        eval_transforms: options of `eval_transforms`, or a ready joint transform (val/test/predict).
        batch_size: training batch size.
        eval_batch_size: val/test/predict batch size (default: ``batch_size``).
        num_workers: loader worker processes.
        persistent_workers: keep workers alive between epochs (only used when ``num_workers > 0``).
        pin_memory: page-locked batches for faster GPU copies; ``None`` = on when CUDA is available.
        splits: overrides of the role -> split-name map ``{"train", "val", "test", "predict"}``; the train role may
            list several (`tconvseg.data.splits.split_names.split_map`); under ``holdout`` that list must be ``holdout_pool``.
        drop_last: drop the last incomplete training batch.
        seed: seed of the training shuffle; ``None`` derives it from ``torch.initial_seed()``, which
            ``lightning.seed_everything`` sets, so seeded runs see the same order. The order of an
            epoch depends only on the seed and the epoch number (see `EpochShuffleSampler`).
        holdout: whole groups (drives) to hold out as the split ``"holdout"`` (the val role), as one
            `HoldoutOptions` (a config's ``data.holdout*`` keys, gathered by `HoldoutOptions.from_config`);
            ``None``: no holdout.
        augment_on: ``"loader"`` (per item, `train_transforms`, in the loader) or ``"device"`` (per batch,
            `tconvseg.data.augment.batch_augment.BatchAugment`, in `on_after_batch_transfer`, training only).
        device_cache: with ``augment_on="device"``: keep the training split on the device (batches are index
            gathers): ``True``, ``False`` or ``"auto"`` (when it fits in ``device_cache_fraction`` of free memory).
        class_mix: probability that a training item is overlaid with half of the classes of another item of its
            batch (`tconvseg.data.augment.class_mix.class_mix`), after its augmentation, in `on_after_batch_transfer`;
            ``None`` or 0: off. Needs training items of one size.
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
        holdout: HoldoutOptions | None = None,
        augment_on: str = "loader",
        device_cache: str | bool = "auto",
        device_cache_fraction: float = 0.5,
        class_mix: float | None = None,
    ) -> None:
        super().__init__()
        self.info = dataset_info(info) if isinstance(info, str) else info
        for key, value in (("batch_size", batch_size), ("eval_batch_size", eval_batch_size)):
            if value is not None and value < 1:
                raise ValueError(f"{key}={value} is invalid; expected a positive integer")
        if num_workers < 0:
            raise ValueError(f"num_workers={num_workers} is invalid; expected >= 0")
        self.splits, self.train_splits = split_map(splits)
        if holdout is not None and not isinstance(holdout, HoldoutOptions):
            raise TypeError(f"holdout={holdout!r} is invalid; expected a HoldoutOptions (HoldoutOptions.from_config(cfg.data)) or None")
        self._holdout = holdout.checked() if holdout is not None else None
        mode = self._holdout.mode if self._holdout else None
        check_train_excludes_held_out(self.train_splits, self._holdout.pool if self._holdout else None, mode)
        if self._holdout is not None:
            check_train_splits_match_pool(self.train_splits, self._holdout.pool, mode)
            self.splits["val"] = HOLDOUT_SPLIT
        self._dataset_factory = dataset
        self._train_spec = dict(train_transforms or {}) if isinstance(train_transforms, Mapping) or train_transforms is None else None
        self._transforms = {
            "train": transforms_from_options(train_transforms, build_train_transforms, ignore_index=self.info.ignore_index),
            "eval": transforms_from_options(eval_transforms, build_eval_transforms),
        }
        if augment_on not in ("loader", "device"):
            raise ValueError(f"data.augment_on={augment_on!r} is invalid; expected loader or device")
        self.augment_on = augment_on
        self.class_mix = check_class_mix(class_mix)
        cache_options = (device_cache, device_cache_fraction)
        self._device = None if augment_on == "loader" else DeviceTraining(self._train_spec, self.info.ignore_index, *cache_options)
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

    def dataset(self, role: str, download: bool = True) -> SegmentationDataset:
        """The dataset serving ``role`` (``train``/``val``/``test``/``predict``), built once and cached.

        ``download=False`` switches off a download the dataset config asks for (``setup`` on every
        rank: the data is fetched once, by ``prepare_data``).
        """
        split = self.splits[role]
        kind = "train" if role == "train" else "eval"
        key = (split, kind)
        if key not in self._datasets and self._holdout is not None and split in (HOLDOUT_SPLIT, self.splits["train"]):
            build = self._pool_builder(download)
            self._datasets[key] = self._holdout.view(split == HOLDOUT_SPLIT, self._transforms[kind], build)
        if key not in self._datasets and role == "train" and self.pools_train_splits:
            parts = [self._build_split(name, None, download) for name in self.train_splits]
            self._datasets[key] = PooledView([(part, i) for part in parts for i in range(len(part))], self._transforms[kind])
        if key not in self._datasets:
            self._datasets[key] = self._build_split(split, self._transforms[kind], download)
        return self._datasets[key]

    def _build_split(self, split: str, transforms: Transforms | None, download: bool) -> SegmentationDataset:
        extra = {} if download or "download" not in inspect.signature(self._dataset_factory).parameters else {"download": False}
        ds = self._dataset_factory(split=split, transforms=transforms, **extra)
        ds.source_split = split  # what `tconvseg.data.splits.pooled.item_sources` reports for its items
        if ds.info.num_classes != self.info.num_classes or ds.info.ignore_index != self.info.ignore_index:
            raise DatasetError(
                f"dataset {type(ds).__name__} (split {split!r}) has {ds.info.num_classes} classes and "
                f"ignore_index {ds.info.ignore_index}, but the datamodule's info {self.info.name!r} has "
                f"{self.info.num_classes} and {self.info.ignore_index}; expected them to agree (check the config)."
            )
        return ds

    def _pool_builder(self, download: bool = True) -> Callable[[str], SegmentationDataset]:
        return lambda split: self._build_split(split, None, download)

    def whole_split(self, split: str) -> SegmentationDataset:
        """Every item of the split named ``split``, untransformed, whatever the roles and the holdout (never downloads)."""
        return self._build_split(split, None, download=False)

    @property
    def pools_train_splits(self) -> bool:
        """Whether training runs on every item of several splits (``data.splits.train`` is a list, no holdout)."""
        return len(self.train_splits) > 1 and self._holdout is None

    @property
    def holdout(self) -> str | None:
        """``data.holdout``'s mode (``"sequence"``, ``"kfold"``), or ``None`` without a holdout."""
        return self._holdout.mode if self._holdout is not None else None

    def split_manifest(self) -> dict[str, Any] | None:
        """What a holdout run trained and validated on: mode, pool, held-out groups, per-group counts, held-out names.

        ``None`` without a holdout. Logged at the start of a run and stored in its checkpoints.
        """
        return self._holdout.manifest(self._pool_builder()) if self._holdout is not None else None

    def holdout_identity(self) -> dict[str, Any] | None:
        """The part of the split that makes two runs different runs (mode, pool, held-out groups); ``None`` without one."""
        return self._holdout.identity(self._pool_builder()) if self._holdout is not None else None

    def set_train_transforms(self, changes: Mapping[str, Any]) -> None:
        """Rebuild the training transforms with ``changes`` over the configured options; the train dataset
        uses them from its next item (a mid-run phase change, see `tconvseg.callbacks.TrainTransformPhase`).

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
        if self._device is not None:
            self._device.set_spec(spec)
        self._transforms["train"] = transforms_from_options(spec, build_train_transforms, ignore_index=self.info.ignore_index)
        self._train_spec = spec
        for (_, kind), dataset in self._datasets.items():
            if kind == "train":
                dataset.transforms = self._transforms["train"]

    def prepare_data(self) -> None:
        """Build the splits of the trainer's stage, downloading them if the dataset config says so.

        Lightning calls this once per node (local rank zero) before any rank's `setup`.
        """
        stage = self.trainer.state.fn.value if self.trainer is not None and self.trainer.state.fn else "fit"
        for role in _STAGE_ROLES.get(stage, _STAGE_ROLES["fit"]):
            self.dataset(role)
        if self._holdout is not None:
            self._holdout.split(self._pool_builder())

    def setup(self, stage: str | None = None) -> None:
        """Build (and thereby validate) the splits of ``stage``, never downloading; ``None``: the ``fit`` splits."""
        stage = stage or "fit"
        if stage not in _STAGE_ROLES:
            raise ValueError(f"unknown stage {stage!r}; expected one of {sorted(_STAGE_ROLES)}")
        for role in _STAGE_ROLES[stage]:
            self.dataset(role, download=False)

    def class_weights(self, method: str = "median_frequency") -> torch.Tensor:
        """Loss weights ``(num_classes,)`` from the train masks at label resolution, by `tconvseg.data.datasets.stats.class_weights_by`."""
        if method not in self._weights:
            masks = self.dataset("train").raw_masks() if method != "uniform" else iter(())
            self._weights[method] = class_weights_by(method, masks, self.num_classes, self.info.class_names)
        return self._weights[method].clone()

    def on_after_batch_transfer(self, batch: Any, dataloader_idx: int) -> Any:
        """In training only: under ``augment_on=device`` gather (device cache) and augment the batch where it is;
        then ClassMix (``class_mix``)."""
        if self.trainer is None or not self.trainer.training:
            return batch
        if self._device is not None:
            batch = self._device(batch)
        if self.class_mix > 0:
            images, masks = batch
            batch = class_mix(images, masks, self.class_mix, self.num_classes)
        return batch

    def _train_items(self) -> tuple[Any, Callable[..., Any] | None]:
        """The training loader's dataset and collate function: transformed pairs, raw uint8 pairs or indices."""
        if self._device is None:
            return self.dataset("train"), collate_pairs
        device = self.trainer.strategy.root_device if self.trainer is not None else torch.device("cpu")
        return self._device.items(self.dataset("train"), device, collate_pairs)

    def _loader(self, role: str, batch_size: int, shuffle: bool, drop_last: bool = False) -> DataLoader:
        # A private generator drives shuffling and worker seeds without drawing from the global RNG,
        # so loaders never shift the model's random stream.
        generator = torch.Generator()
        replicas, rank = trainer_shard(self.trainer)
        sampler: Sampler[int] | None = None
        if shuffle:
            base = self.seed if self.seed is not None else torch.initial_seed()
            # The modulo keeps unseeded (random 64-bit) bases in range.
            # When resuming, Lightning has restored the epoch counter before it asks for this loader.
            epoch = self.trainer.current_epoch if self.trainer is not None else 0
            sampler = EpochShuffleSampler(len(self.dataset(role)), base % 2**63, generator, epoch=epoch, num_replicas=replicas, rank=rank)
        else:
            generator.manual_seed(0)
            if replicas > 1:
                sampler = ShardSampler(len(self.dataset(role)), replicas, rank)
        items, collate = self._train_items() if role == "train" else (self.dataset(role), collate_pairs)
        workers = 0 if isinstance(items, IndexItems) else self.num_workers  # an index gather needs no worker
        pin = self.pin_memory and not isinstance(items, IndexItems)
        return DataLoader(items, batch_size=batch_size, sampler=sampler, drop_last=drop_last, num_workers=workers,
                          persistent_workers=self.persistent_workers and workers > 0, pin_memory=pin, collate_fn=collate, generator=generator)

    def train_dataloader(self) -> DataLoader:
        return self._loader("train", self.batch_size, shuffle=True, drop_last=self.drop_last)

    def val_dataloader(self) -> DataLoader:
        return self._loader("val", self.eval_batch_size, shuffle=False)

    def test_dataloader(self) -> DataLoader:
        return self._loader("test", self.eval_batch_size, shuffle=False)

    def predict_dataloader(self) -> DataLoader:
        return self._loader("predict", self.eval_batch_size, shuffle=False)

