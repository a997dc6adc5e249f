"""The run record: what makes two runs "the same run", and what a checkpoint says about the data it trained on.

Built once, in `build_run_record` (train), stored in every checkpoint under `CKPT_RUN_IDENTITY` as `RunRecord.to_dict`,
read back with `RunRecord.from_checkpoint`, and compared in one place, `RunRecord.differences` (resume, ``ckpt_path=last``,
SLURM requeue). Checkpoints written before the record had a format version (plain dicts with the same keys) read as
version 0 and compare the same way.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from omegaconf import DictConfig, OmegaConf

if TYPE_CHECKING:
    from tconvseg.data import SegmentationDataModule

#: Key under which the run record is stored in a checkpoint.
CKPT_RUN_IDENTITY = "tconvseg_run"
#: The fields two records are compared on (`RunRecord.differences`).
COMPARED = ("experiment", "model", "data")

#: Experiments renamed on 2026-12-07 (old name -> new name; CHANGELOG.md, "Deprecated"). The old names still compose,
#: for one release, through alias configs that say ``experiment_renamed``; records carry the new name, so a run
#: started under an old name resumes under the new one and the other way round.
EXPERIMENT_RENAMES: dict[str, str] = {
    "camvid_cpu": "recipe_cpu_30min",
    "camvid_cpu_60min": "recipe_cpu_60min",
    "camvid_cpu_60min_v1": "recipe_v1_cpu_60min",
    "camvid_cpu_60min_v2": "recipe_v2_cpu_60min",
    "camvid_cpu_15min": "baseline_cpu_15min",
    "drive_holdout_steps": "protocol_select_steps",
    "drive_holdout_15min": "protocol_select_15min",
    "drive_confirm_steps": "protocol_confirm_steps",
}


def current_experiment_name(name: str | None) -> str | None:
    """``name`` under its current name: an old name of `EXPERIMENT_RENAMES` becomes the new one."""
    return EXPERIMENT_RENAMES.get(name, name) if name is not None else None
#: The record's format: 1 since the record became a type (2026-12-07); plain dicts written before read as 0.
FORMAT_VERSION = 1


@dataclass(frozen=True)
class RunRecord:
    """What a run was: compared fields (``experiment``, ``model``, ``data``) and stored-only ones.

    Attributes:
        experiment: the Hydra ``experiment`` option (``None`` outside Hydra); compared only when both records know it.
        model: the network config (``model.net``, resolved), ``None`` when the model config has none.
        data: ``dataset`` (the dataset's ``_target_``), ``info`` (the classes' name), ``num_classes``; ``train_splits``
            when several splits are pooled for training; ``holdout`` (``mode``, ``pool``, ``held_out``) under a holdout.
        train_splits: the splits trained on (stored, not compared: what eval's ``trained_on_split`` reads).
        splits: under a holdout, the split manifest (held-out items by name; stored, not compared).
        format_version: `FORMAT_VERSION` when written; 0 for records stored before it existed.
    """

    experiment: str | None
    model: Mapping[str, Any] | None
    data: Mapping[str, Any]
    train_splits: tuple[str, ...] | None = None
    splits: Mapping[str, Any] | None = None
    format_version: int = FORMAT_VERSION

    @classmethod
    def from_dict(cls, stored: Mapping[str, Any] | None) -> RunRecord | None:
        """The record of a stored dict (any format version); ``None`` for ``None`` or an empty dict."""
        if not stored:
            return None
        train_splits = stored.get("train_splits")
        return cls(
            experiment=current_experiment_name(stored.get("experiment")),
            model=stored.get("model"),
            data=dict(stored.get("data") or {}),
            train_splits=tuple(train_splits) if train_splits is not None else None,
            splits=stored.get("splits"),
            format_version=int(stored.get("format_version", 0)),
        )

    @classmethod
    def from_checkpoint(cls, checkpoint: Mapping[str, Any]) -> RunRecord | None:
        """The record a loaded checkpoint stores, ``None`` when it stores none."""
        return cls.from_dict(checkpoint.get(CKPT_RUN_IDENTITY))

    def to_dict(self) -> dict[str, Any]:
        """Plain containers only (checkpoints load with ``weights_only=True``); the keys of the records before it."""
        stored: dict[str, Any] = {"experiment": self.experiment, "model": self.model, "data": dict(self.data)}
        if self.train_splits is not None:
            stored["train_splits"] = list(self.train_splits)
        if self.splits is not None:
            stored["splits"] = self.splits
        stored["format_version"] = self.format_version
        return stored

    def differences(self, other: RunRecord | None) -> list[str]:
        """The compared fields on which ``other`` differs; none when ``other`` is ``None`` (a run that stored no record)."""
        if other is None:
            return []
        keys = [k for k in COMPARED if k != "experiment" or (self.experiment is not None and other.experiment is not None)]
        return [k for k in keys if getattr(self, k) != getattr(other, k)]

    def describe(self) -> str:
        """One line for error messages: experiment, network, encoder, topology, data."""
        model = self.model or {}
        encoder = model.get("encoder", {})
        encoder = encoder.get("name", encoder.get("_target_")) if isinstance(encoder, Mapping) else encoder
        return (
            f"experiment={self.experiment}, model={model.get('_target_')} (encoder={encoder}, "
            f"topology={model.get('topology')}), data={dict(self.data)}"
        )

    @property
    def holdout(self) -> Mapping[str, Any] | None:
        """``{"mode", "pool", "held_out"}`` of a run that held groups out, else ``None``."""
        return self.data.get("holdout")

    @property
    def dataset_name(self) -> str | None:
        """The name of the classes the run trained on (a `DatasetInfo` name such as ``camvid``)."""
        return self.data.get("info")

    @property
    def num_classes(self) -> int | None:
        return self.data.get("num_classes")

    @property
    def stored_train_splits(self) -> list[str] | None:
        """The training splits the record names (``train_splits``, else ``data.train_splits``); ``None`` when it names none."""
        splits = self.train_splits if self.train_splits is not None else self.data.get("train_splits")
        return list(splits) if splits else None


def describe(record: RunRecord | None) -> str:
    """`RunRecord.describe`, or what to say when a checkpoint stores no record."""
    return record.describe() if record is not None else "unknown (no run identity stored)"


def build_run_record(cfg: DictConfig, datamodule: SegmentationDataModule) -> RunRecord:
    """The record of the run ``cfg`` starts on ``datamodule``'s data: the one place a record is built.

    Under ``data.holdout`` the data part names the held-out groups and ``splits`` lists what was held out
    (`SegmentationDataModule.split_manifest`); ``data.train_splits`` is there only when splits are pooled, ``holdout``
    only under a holdout, so the records of runs without them compare as before.
    """
    from hydra.core.hydra_config import HydraConfig

    chosen = HydraConfig.get().runtime.choices.get("experiment") if HydraConfig.initialized() else None
    experiment = current_experiment_name(chosen)
    net = cfg.model.get("net") if isinstance(cfg.model, DictConfig) else None
    data: dict[str, Any] = {
        "dataset": OmegaConf.select(cfg, "data.dataset._target_"),
        "info": datamodule.info.name,
        "num_classes": datamodule.info.num_classes,
    }
    if datamodule.pools_train_splits:
        data["train_splits"] = list(datamodule.train_splits)
    holdout = datamodule.holdout_identity()
    if holdout is not None:
        data["holdout"] = holdout
    model = OmegaConf.to_container(net, resolve=True) if isinstance(net, DictConfig) else net
    return RunRecord(
        experiment=experiment, model=model, data=data, train_splits=tuple(datamodule.train_splits),
        splits=datamodule.split_manifest() if holdout is not None else None,
    )
