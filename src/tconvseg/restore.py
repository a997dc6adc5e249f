"""A trained system rebuilt from its checkpoint, for inference (``tconvseg-predict``, ``tconvseg-export``).

Same trust model as evaluation: the checkpoint is read with ``weights_only=True``, the model config
stored in it is vetted by :func:`~tconvseg.checkpoints.check_targets` before anything is built, and
pretrained-weight downloads named in it are switched off (the checkpoint's tensors replace them).
"""

from __future__ import annotations

import dataclasses
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from hydra.utils import instantiate
from omegaconf import DictConfig, OmegaConf

from tconvseg.builders import build_system
from tconvseg.checkpoints import (
    CKPT_MODEL_CONFIG,
    CKPT_RUN_IDENTITY,
    check_targets,
    disable_weight_downloads,
    find_last_checkpoint,
    load_checkpoint,
)
from tconvseg.data.info import DatasetInfo, dataset_info, synthetic_info, voc_colormap
from tconvseg.evaluate import load_weights
from tconvseg.system import SegmentationSystem

log = logging.getLogger(__name__)


@dataclass
class Restored:
    """A trained system in eval mode, the classes it predicts (names and colours), and where it came from."""

    system: SegmentationSystem
    info: DatasetInfo
    path: str
    checkpoint: dict[str, Any]


def resolve_checkpoint(ckpt_path: str, log_dir: str) -> str:
    """``ckpt_path`` as an existing file; ``last``: the newest readable ``last.ckpt`` of the training runs under ``log_dir``."""
    if ckpt_path == "last":
        return find_last_checkpoint(log_dir, "train")
    if not Path(ckpt_path).is_file():
        raise FileNotFoundError(f"ckpt_path={ckpt_path}: no such checkpoint file; expected a .ckpt written by tconvseg-train, or ckpt_path=last")
    return str(ckpt_path)


def restore(cfg: DictConfig) -> Restored:
    """Load ``cfg.ckpt_path`` and rebuild its network from the model config stored in it.

    Class names come from the checkpoint; colours from the dataset the checkpoint was trained on
    when that is a known one (camvid, voc, pets, synthetic), else from ``cfg.data.info``.

    Raises:
        ValueError: unreadable checkpoint, no stored model config, weights that do not fit, or a
            palette with another number of classes than the checkpoint (explained).
    """
    path = resolve_checkpoint(str(cfg.ckpt_path), cfg.paths.log_dir)
    checkpoint = load_checkpoint(path)
    stored = checkpoint.get(CKPT_MODEL_CONFIG)
    if stored is None:
        raise ValueError(f"checkpoint {path} holds no model config ({CKPT_MODEL_CONFIG!r}); expected a checkpoint written by tconvseg-train")
    check_targets(stored, path, trusted=list(cfg.get("trusted_targets") or []))
    info = class_info(checkpoint, cfg, path)
    system = build_system(OmegaConf.create(disable_weight_downloads(stored)), info)  # the checkpoint restores the class weights
    load_weights(system, checkpoint, path)
    return Restored(system.eval(), info, path, checkpoint)


def class_info(checkpoint: dict[str, Any], cfg: DictConfig, path: str) -> DatasetInfo:
    """The :class:`DatasetInfo` of the classes the checkpoint predicts (see :func:`restore`)."""
    hparams = checkpoint.get("hyper_parameters", {})
    num_classes = hparams.get("num_classes")
    trained_on = (checkpoint.get(CKPT_RUN_IDENTITY) or {}).get("data", {}).get("info")
    if trained_on == "synthetic" and num_classes:
        info, source = synthetic_info(num_classes), "the checkpoint (synthetic)"
    else:
        try:
            info, source = dataset_info(trained_on), f"the checkpoint ({trained_on})"
        except (ValueError, AttributeError):  # not a registered dataset: the data config describes the classes
            node = OmegaConf.select(cfg, "data.info")
            if node is None:  # no data config (export): names from the checkpoint, VOC's colours
                names = hparams.get("class_names") or [str(i) for i in range(num_classes or 0)]
                info = DatasetInfo("checkpoint", tuple(names), hparams.get("ignore_index", 255), voc_colormap(len(names)))
            else:
                info = dataset_info(node) if isinstance(node, str) else instantiate(node, _convert_="all")
            source = f"the data config (data.info: {info.name})"
    if num_classes is not None and num_classes != info.num_classes:
        raise ValueError(
            f"checkpoint {path} predicts {num_classes} classes ({', '.join(hparams.get('class_names') or [])}) but the "
            f"palette of {source} has {info.num_classes} ({', '.join(info.class_names)}): there is no colour for every "
            f"class. Expected the data option the model was trained with, e.g. data=camvid or data=folder with "
            f"data.info.class_names / data.info.palette of {num_classes} classes."
        )
    names = hparams.get("class_names")
    if names and tuple(names) != info.class_names:
        log.warning("Class names %s from the checkpoint, colours from %s", list(names), source)
        info = dataclasses.replace(info, class_names=tuple(names))
    return info
