"""Objects built from config: data module, training system, trainer, callback / logger groups."""

from __future__ import annotations

import math
from typing import Any

import lightning as L
import torch
from hydra.utils import instantiate
from omegaconf import DictConfig, OmegaConf
from omegaconf.errors import MissingMandatoryValue

from tconvseg.data import DatasetInfo, SegmentationDataModule
from tconvseg.data.datasets.stats import COMPUTED_WEIGHTINGS
from tconvseg.data.splits.holdout import HOLDOUT_KEYS, HoldoutOptions
from tconvseg.training.atomic import AtomicCheckpointIO
from tconvseg.training.cluster import cluster_plugins
from tconvseg.training.system import SegmentationSystem


class ConfigError(ValueError):
    """A config value that cannot work, explained."""


def build_datamodule(cfg: DictConfig) -> SegmentationDataModule:
    """The data module of ``cfg.data``; its flat ``holdout*`` keys reach it as one `HoldoutOptions`."""
    data = cfg.data
    if isinstance(data, DictConfig) and any(key in data for key in HOLDOUT_KEYS):
        # resolved first: the cut-down copy has no root to resolve ${paths.data_dir} and the like against
        resolved: dict[str, Any] = OmegaConf.to_container(data, resolve=True)  # type: ignore[assignment]
        rest = OmegaConf.create({key: value for key, value in resolved.items() if key not in HOLDOUT_KEYS})
        # partial, then called: instantiate's own kwargs are merged into the config, which would turn the options into a dict
        datamodule = instantiate(rest, _partial_=True)(holdout=HoldoutOptions.from_config(resolved))
    else:
        datamodule = instantiate(data)
    if not isinstance(datamodule, SegmentationDataModule):
        raise ConfigError(f"data config builds a {type(datamodule).__name__}, expected a SegmentationDataModule")
    return datamodule


def model_options(model_cfg: DictConfig | dict) -> dict[str, Any]:
    """The ``model`` config as a plain dict; a missing mandatory value (``???``) is explained."""
    try:
        return OmegaConf.to_container(model_cfg, resolve=True, throw_on_missing=True) if isinstance(model_cfg, DictConfig) else dict(model_cfg)
    except MissingMandatoryValue as err:
        raise ConfigError(
            f"model.{err.full_key} has no value (???): expected the model option to set it. model=base is the shared "
            "parent of the model options, not a model: pick e.g. model=fcn8s_resnet18, or set the key on the command line."
        ) from None


def class_weights_for(model_cfg: DictConfig | dict, datamodule: SegmentationDataModule) -> torch.Tensor | list[float] | None:
    """The loss weights ``model.class_weighting`` asks for, for training on ``datamodule``.

    ``median_frequency`` / ``median_frequency_sqrt``: computed from the data module's train masks; a list: as
    given (checked by `build_system`); ``null``: none.
    """
    weighting = model_options(model_cfg).get("class_weighting")
    if weighting in COMPUTED_WEIGHTINGS:
        return datamodule.class_weights(method=weighting)
    return list(weighting) if isinstance(weighting, (list, tuple)) else None


def build_system(
    model_cfg: DictConfig | dict, info: DatasetInfo, class_weights: torch.Tensor | list[float] | None = None, tta: dict[str, Any] | None = None,
    tiling: dict[str, Any] | None = None,
) -> SegmentationSystem:
    """The training system from a ``model`` config, for the classes of ``info``.

    ``class_weights`` (``(K,)``) are the loss weights; the caller computes them
    (`class_weights_for`). Without them a listed ``class_weighting`` is used as given, and
    a computed weighting (``median_frequency``, ``median_frequency_sqrt``) leaves them to the checkpoint the system is then loaded from (evaluation).
    ``class_weighting`` is checked either way. ``tta`` (``{"mode", "scales"}``) is the test-time
    augmentation of the system's test / predict steps, ``tiling`` how they tile large images. A config read from a checkpoint must pass
    `tconvseg.training.checkpoints.check_targets` first.
    """
    options = model_options(model_cfg)
    weighting = options.pop("class_weighting", None)
    listed = isinstance(weighting, (list, tuple)) and len(weighting) == info.num_classes and all(
        isinstance(w, (int, float)) and math.isfinite(w) and w >= 0 for w in weighting
    )
    if weighting not in (*COMPUTED_WEIGHTINGS, None) and not listed:
        raise ConfigError(
            f"model.class_weighting={weighting!r} is invalid; expected median_frequency, median_frequency_sqrt, null or a list of "
            f"{info.num_classes} finite non-negative per-class weights (one per class of {info.name!r})"
        )
    weights = class_weights if class_weights is not None else (list(weighting) if listed else None)
    # _convert_="all": plain lists / dicts in the hyperparameters keep checkpoints loadable with
    # torch.load(weights_only=True).
    system = instantiate(
        options,
        _convert_="all",
        net={"num_classes": info.num_classes},
        num_classes=info.num_classes,
        ignore_index=info.ignore_index,
        class_names=list(info.class_names),
        class_weights=weights,
        **({"tta": tta} if tta is not None else {}),
        **({"tiling": tiling} if tiling is not None else {}),
    )
    if not isinstance(system, SegmentationSystem):
        raise ConfigError(f"model config builds a {type(system).__name__}, expected a SegmentationSystem")
    return system


def check_input_normalization(net: Any, data_cfg: DictConfig | None) -> None:
    """Refuse a data config whose ``mean`` / ``std`` differ from what the encoder's first layer assumes.

    An encoder that carries its input normalisation (``encoder.input_normalization = (mean, std)``, e.g. the
    EfficientNet-Lite encoders, whose stem maps ImageNet-normalised inputs to what their weights expect) would
    silently see shifted inputs otherwise. Options absent from the config mean the transforms' defaults (ImageNet's).

    Raises:
        ConfigError: naming the key, its value and the expected one.
    """
    from tconvseg.data.augment.transforms import IMAGENET_MEAN, IMAGENET_STD

    expected = getattr(getattr(net, "encoder", None), "input_normalization", None)
    if expected is None or data_cfg is None:
        return
    defaults = {"mean": IMAGENET_MEAN, "std": IMAGENET_STD}
    for group in ("train_transforms", "eval_transforms"):
        options = data_cfg.get(group)
        if not isinstance(options, DictConfig):
            continue
        for index, key in enumerate(("mean", "std")):
            value = options.get(key, defaults[key])
            value = list(value) if value is not None else None
            if value is None or len(value) != 3 or not all(math.isclose(float(a), b, abs_tol=1e-4) for a, b in zip(value, expected[index])):
                raise ConfigError(
                    f"data.{group}.{key}={value} but the encoder expects inputs normalised with {key}={list(expected[index])} "
                    f"(its first layer maps them to what its weights were trained on). Expected data.{group}.{key} left at "
                    f"its default, ImageNet's {list(expected[index])}"
                )


def build_group(cfg: DictConfig | None, group: str = "callbacks") -> list[Any]:
    """Instantiate every entry of a callbacks / logger group (``None`` → empty; a ``null`` entry is switched off).

    An entry without ``_target_`` is refused rather than skipped: it is what setting a key of a callback
    that is not in the group's list produces (``callbacks: {ema: {decay: 0.99}}`` in an experiment file,
    or ``+callbacks.ema.decay=0.99``, without ``ema`` in ``callbacks=[...]``), and skipping it would
    silently drop the setting. ``group`` names the group in that error.
    """
    if not cfg:
        return []
    # The option each group's list starts from in train.yaml, so the hint is a command that composes.
    first_option = {"callbacks": "default", "logger": "csv"}.get(group, "default")
    built = []
    for key, node in cfg.items():
        if node is None:
            continue
        if not isinstance(node, DictConfig) or "_target_" not in node:
            shown = OmegaConf.to_container(node) if isinstance(node, DictConfig) else node
            raise ConfigError(
                f"{group}.{key} = {shown!r} has no _target_, so "
                f"nothing would be built from it and its settings would be ignored. Expected each {group} entry to be a config "
                f"with _target_ or null: add the entry's config to the group (e.g. {group}=[{first_option},{key}] when "
                f"configs/{group}/{key}.yaml exists) or remove the key."
            )
        built.append(instantiate(node))
    return built


def build_trainer(cfg: DictConfig, **kwargs: Any) -> L.Trainer:
    """The Lightning Trainer of ``cfg.trainer``; checkpoints are written atomically and read as data only.

    Under SLURM it also gets Lightning's SLURM environment with auto-requeue (see `tconvseg.training.cluster`).
    """
    return instantiate(cfg.trainer, plugins=[AtomicCheckpointIO(), *cluster_plugins()], **kwargs)
