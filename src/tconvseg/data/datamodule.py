"""Lightning DataModule shared by every dataset family.

Hydra builds it from ``configs/data/*.yaml``: the dataset is a factory called as
``dataset(split=..., transforms=...)`` (a ``_partial_: true`` node), transform options are plain
mappings fed to :func:`~tconvseg.data.transforms.train_transforms` /
:func:`~tconvseg.data.transforms.eval_transforms`.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Mapping
from typing import Any

import lightning
import torch
from torch.utils.data import DataLoader, Sampler

from .base import SegmentationDataset, Transforms
from .errors import DatasetError
from .groups import describe_groups, holdout_indices, leave_one_group_out
from .info import DatasetInfo, dataset_info
from .pooled import PooledView
from .samplers import EpochShuffleSampler, ShardSampler
from .stats import WEIGHT_METHODS, median_frequency_weights
from .transforms import eval_transforms as build_eval_transforms
from .transforms import train_transforms as build_train_transforms

DEFAULT_SPLITS = {"train": "train", "val": "val", "test": "test", "predict": "test"}
#: Split name of the held-out groups under ``holdout`` (the val role's split then).
HOLDOUT_SPLIT = "holdout"
HOLDOUT_MODES = ("sequence", "kfold")
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
        holdout: ``None`` (the splits as they are), ``"sequence"`` (hold out the groups in
            ``holdout_groups``) or ``"kfold"`` (leave-one-group-out: hold out the ``holdout_fold``-th group
            in sorted order). The items of the ``holdout_pool`` splits are pooled; the held-out groups
            become the split ``"holdout"`` (the val role), the rest the split ``splits["train"]`` (the train
            role). No held-out item reaches training. Groups come from the dataset's ``groups()``.
        holdout_groups: group names held out under ``holdout="sequence"``, e.g. ``["0006R0"]``.
        holdout_fold: fold index under ``holdout="kfold"``.
        holdout_pool: split names pooled under a holdout; default ``["train", "val"]``.
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
        holdout: str | None = None,
        holdout_groups: list[str] | None = None,
        holdout_fold: int | None = None,
        holdout_pool: list[str] | None = None,
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
        self.holdout = _check_holdout(holdout, holdout_groups, holdout_fold)
        self.holdout_groups = [str(g) for g in holdout_groups] if holdout_groups else []
        self.holdout_fold = holdout_fold
        self.holdout_pool = list(holdout_pool) if holdout_pool is not None else ["train", "val"]
        if self.holdout is not None:
            if not self.holdout_pool or HOLDOUT_SPLIT in self.holdout_pool:
                raise ValueError(f"data.holdout_pool={holdout_pool!r} is invalid; expected a non-empty list of split names such as [train, val]")
            self.splits["val"] = HOLDOUT_SPLIT
        self._pool: list[SegmentationDataset] | None = None
        self._holdout_split: tuple[list[int], list[int], list[str]] | None = None
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

    def dataset(self, role: str, download: bool = True) -> SegmentationDataset:
        """The dataset serving ``role`` (``train``/``val``/``test``/``predict``), built once and cached.

        ``download=False`` switches off a download the dataset config asks for (``setup`` on every
        rank: the data is fetched once, by ``prepare_data``).
        """
        split = self.splits[role]
        kind = "train" if role == "train" else "eval"
        key = (split, kind)
        if key not in self._datasets and self.holdout is not None and split in (HOLDOUT_SPLIT, self.splits["train"]):
            self._datasets[key] = self._holdout_view(split, kind, download)
        if key not in self._datasets:
            self._datasets[key] = self._build_split(split, self._transforms[kind], download)
        return self._datasets[key]

    def _build_split(self, split: str, transforms: Transforms | None, download: bool) -> SegmentationDataset:
        extra = {} if download or "download" not in inspect.signature(self._dataset_factory).parameters else {"download": False}
        ds = self._dataset_factory(split=split, transforms=transforms, **extra)
        if ds.info.num_classes != self.info.num_classes or ds.info.ignore_index != self.info.ignore_index:
            raise DatasetError(
                f"dataset {type(ds).__name__} (split {split!r}) has {ds.info.num_classes} classes and "
                f"ignore_index {ds.info.ignore_index}, but the datamodule's info {self.info.name!r} has "
                f"{self.info.num_classes} and {self.info.ignore_index}; expected them to agree (check the config)."
            )
        return ds

    def _holdout_view(self, split: str, kind: str, download: bool) -> PooledView:
        """The kept (``split`` = the train split's name) or held-out side of the pool, with ``kind``'s transforms."""
        kept, held, _ = self.holdout_split(download)
        assert self._pool is not None
        offsets = [(ds, i) for ds in self._pool for i in range(len(ds))]
        indices = held if split == HOLDOUT_SPLIT else kept
        return PooledView([offsets[i] for i in indices], self._transforms[kind])

    def holdout_split(self, download: bool = True) -> tuple[list[int], list[int], list[str]]:
        """``(kept, held_out, held_out_groups)``: indices into the pool (the ``holdout_pool`` splits in order).

        Raises:
            ValueError: not in a holdout mode, an unknown group (naming those that exist), a bad fold.
            DatasetError: the dataset has no groups.
        """
        if self.holdout is None:
            raise ValueError("data.holdout is null: there is no held-out split; expected data.holdout=sequence or kfold")
        if self._holdout_split is None:
            self._pool = [self._build_split(name, None, download) for name in self.holdout_pool]
            groups = [g for ds in self._pool for g in ds.groups()]
            where = f"the pooled splits {self.holdout_pool}"
            if self.holdout == "kfold":
                wanted = [leave_one_group_out(groups, self.holdout_fold, where)]  # type: ignore[arg-type]
            else:
                wanted = list(dict.fromkeys(self.holdout_groups))
            kept, held = holdout_indices(groups, wanted, where)
            self._holdout_split = (kept, held, wanted)
        return self._holdout_split

    def split_manifest(self) -> dict[str, Any] | None:
        """What a holdout run trained and validated on: mode, pool, held-out groups, per-group counts, held-out names.

        ``None`` without a holdout. Stored in checkpoints and logged at the start of a run.
        """
        if self.holdout is None:
            return None
        kept, held, wanted = self.holdout_split()
        assert self._pool is not None
        names = [n for ds in self._pool for n in ds.names()]
        groups = [g for ds in self._pool for g in ds.groups()]
        return {
            "mode": self.holdout,
            "pool": list(self.holdout_pool),
            "held_out": wanted,
            "train_groups": describe_groups([groups[i] for i in kept]),
            "val_groups": describe_groups([groups[i] for i in held]),
            "val_items": [names[i] for i in held],
        }

    def holdout_identity(self) -> dict[str, Any] | None:
        """The part of the split that makes two runs different runs (mode, pool, held-out groups); ``None`` without one."""
        if self.holdout is None:
            return None
        return {"mode": self.holdout, "pool": list(self.holdout_pool), "held_out": self.holdout_split()[2]}

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

    def prepare_data(self) -> None:
        """Build the splits of the trainer's stage, downloading them if the dataset config says so.

        Lightning calls this once per node (local rank zero) before any rank's :meth:`setup`.
        """
        stage = self.trainer.state.fn.value if self.trainer is not None and self.trainer.state.fn else "fit"
        for role in _STAGE_ROLES.get(stage, _STAGE_ROLES["fit"]):
            self.dataset(role)
        if self.holdout is not None:
            self.holdout_split()

    def setup(self, stage: str | None = None) -> None:
        """Build (and thereby validate) the splits of ``stage``, never downloading; ``None``: the ``fit`` splits."""
        stage = stage or "fit"
        if stage not in _STAGE_ROLES:
            raise ValueError(f"unknown stage {stage!r}; expected one of {sorted(_STAGE_ROLES)}")
        for role in _STAGE_ROLES[stage]:
            self.dataset(role, download=False)

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
        replicas, rank = self._shard()
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

    def _shard(self) -> tuple[int, int]:
        """``(world size, global rank)`` of the trainer; the loaders shard the splits themselves."""
        if self.trainer is None or self.trainer.world_size == 1:
            return 1, 0
        # Lightning's replacement would pad evaluation splits with duplicates and wrap the training
        # sampler without calling its set_epoch; the trainer/ddp*.yaml options switch it off.
        if self.trainer._accelerator_connector.use_distributed_sampler:
            raise ValueError(
                "trainer.use_distributed_sampler=true under DDP: Lightning would replace this datamodule's samplers "
                "(padding evaluation splits with duplicates that distort the metrics). Expected "
                "trainer.use_distributed_sampler=false, as in trainer=ddp and trainer=ddp_cpu: the datamodule shards by rank itself."
            )
        return self.trainer.world_size, self.trainer.global_rank

    def train_dataloader(self) -> DataLoader:
        return self._loader("train", self.batch_size, shuffle=True, drop_last=self.drop_last)

    def val_dataloader(self) -> DataLoader:
        return self._loader("val", self.eval_batch_size, shuffle=False)

    def test_dataloader(self) -> DataLoader:
        return self._loader("test", self.eval_batch_size, shuffle=False)

    def predict_dataloader(self) -> DataLoader:
        return self._loader("predict", self.eval_batch_size, shuffle=False)


def _check_holdout(holdout: str | None, groups: list[str] | None, fold: int | None) -> str | None:
    """``holdout`` after checking that its options agree; one-line ``ValueError`` naming the key otherwise."""
    if holdout in (None, "none", "null"):
        if groups or fold is not None:
            raise ValueError(
                f"data.holdout_groups={groups!r} / data.holdout_fold={fold!r} are set but data.holdout is null; expected "
                f"data.holdout=sequence (with holdout_groups) or data.holdout=kfold (with holdout_fold)"
            )
        return None
    if holdout not in HOLDOUT_MODES:
        raise ValueError(f"data.holdout={holdout!r} is invalid; expected null, {' or '.join(HOLDOUT_MODES)}")
    if holdout == "sequence" and (not groups or isinstance(groups, str)):
        raise ValueError(f"data.holdout=sequence needs data.holdout_groups, a list of group names such as [0006R0]; got {groups!r}")
    for group in groups or []:
        if isinstance(group, float):  # YAML 1.1 and OmegaConf read 0016E5 as 16e5
            raise ValueError(
                f"data.holdout_groups holds the number {group!r}, not a group name: an unquoted name such as 0016E5 reads as a "
                f"number in YAML. Expected quoted names in config files, e.g. holdout_groups: ['0016E5']"
            )
    if holdout == "sequence" and fold is not None:
        raise ValueError(f"data.holdout_fold={fold!r} applies to data.holdout=kfold, not sequence; expected it null")
    if holdout == "kfold" and fold is None:
        raise ValueError("data.holdout=kfold needs data.holdout_fold, the index of the group to hold out (0, 1, ...)")
    if holdout == "kfold" and groups:
        raise ValueError(f"data.holdout_groups={groups!r} applies to data.holdout=sequence, not kfold; expected it empty")
    return holdout
