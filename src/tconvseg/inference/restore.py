"""A trained system rebuilt from its checkpoint, and the inference set-up: the one path of ``tconvseg-eval``,
``tconvseg-predict`` and ``tconvseg-export``.

`set_up_inference` checks an entry point's inference options (test-time augmentation, tiles, batch-norm adaptation)
before anything is read and sets up the process (seed, matmul precision); `restore` rebuilds the system with them.

Same trust model as evaluation: the checkpoint is read with ``weights_only=True``, the model config
stored in it is vetted by `tconvseg.training.checkpoints.check_targets` before anything is built, and
pretrained-weight downloads named in it are switched off (the checkpoint's tensors replace them).
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import lightning as L
import torch
from hydra.utils import instantiate
from omegaconf import DictConfig, OmegaConf

from tconvseg.callbacks import check_adapt_bn
from tconvseg.data.augment.transforms import IMAGENET_MEAN, IMAGENET_STD
from tconvseg.data.datasets.images import DEFAULT_MAX_IMAGE_PIXELS
from tconvseg.data.datasets.info import DatasetInfo, dataset_info, synthetic_info, voc_colormap
from tconvseg.inference.tiling import tiling_options
from tconvseg.inference.tta import tta_options
from tconvseg.training.builders import build_system
from tconvseg.training.checkpoints import (
    CKPT_MODEL_CONFIG,
    check_targets,
    disable_weight_downloads,
    find_last_checkpoint,
    load_checkpoint,
)
from tconvseg.training.run_record import RunRecord
from tconvseg.training.system import SegmentationSystem

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class InferenceOptions:
    """An entry point's inference options, checked: ``tta`` (``{"mode", "scales"}``), ``tiling`` (`tiling_options`),
    ``adapt_bn`` (recompute batch-norm statistics from the images first)."""

    tta: dict[str, Any]
    tiling: dict[str, Any]
    adapt_bn: bool


def set_up_inference(cfg: DictConfig) -> InferenceOptions:
    """Check ``cfg``'s ``tta`` / ``tta_scales``, tile and ``adapt_bn`` options (bad ones fail before any file is read),
    then seed the process (``cfg.seed``, when set) and set ``float32_matmul_precision``: what eval, predict and export
    all do first."""
    options = InferenceOptions(
        tta=dict(zip(("mode", "scales"), tta_options(cfg))),
        tiling=tiling_options(cfg),
        adapt_bn=check_adapt_bn(cfg.get("adapt_bn", False)),
    )
    if cfg.get("seed") is not None:
        L.seed_everything(cfg.seed, workers=True)
    torch.set_float32_matmul_precision(cfg.get("float32_matmul_precision", "high"))
    return options


def normalisation(cfg: DictConfig) -> tuple[Sequence[float] | None, Sequence[float] | None]:
    """``(mean, std)`` of the data option's eval transforms (``cfg.data.eval_transforms``; ImageNet's when it names
    none): the normalisation the network saw in training, which predict, the video path and the demo page apply."""
    options = cfg.data.get("eval_transforms") if cfg.get("data") else None
    options = OmegaConf.to_container(options) if options else {}
    return options.get("mean", IMAGENET_MEAN), options.get("std", IMAGENET_STD)  # type: ignore[union-attr]


def image_options(cfg: DictConfig) -> tuple[float | None, int]:
    """``(scale, max_pixels)``: ``cfg.scale`` (a factor > 0, or ``None`` for each image's own size) and
    ``cfg.max_image_pixels``, checked: what predict and the demo page read their images with.

    Raises:
        ValueError: either value invalid, named with what was expected.
    """
    scale = cfg.get("scale")
    if scale is not None and (isinstance(scale, bool) or not isinstance(scale, (int, float)) or scale <= 0):
        raise ValueError(f"scale={scale!r} is invalid; expected a factor > 0 (e.g. scale=0.5), or null for each image's own size")
    pixels = cfg.get("max_image_pixels", DEFAULT_MAX_IMAGE_PIXELS)
    if isinstance(pixels, bool) or not isinstance(pixels, int) or pixels < 1:
        raise ValueError(f"max_image_pixels={pixels!r} is invalid; expected a positive number of pixels (default {DEFAULT_MAX_IMAGE_PIXELS})")
    return scale, pixels


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


def restore(
    cfg: DictConfig, options: InferenceOptions | None = None, *, loaded: tuple[str, dict[str, Any]] | None = None,
    info: DatasetInfo | None = None, model_cfg: DictConfig | None = None,
) -> Restored:
    """Load ``cfg.ckpt_path`` and rebuild its network from the model config stored in it, with ``options``.

    Class names come from the checkpoint; colours from the dataset the checkpoint was trained on
    when that is a known one (camvid, voc, pets, synthetic), else from ``cfg.data.info``.

    Args:
        cfg: the entry point's config (``ckpt_path``, ``paths.log_dir``, ``trusted_targets``, the inference options).
        options: from `set_up_inference`; read from ``cfg`` when not given.
        loaded: ``(path, checkpoint)`` already read by the caller (eval reads the run record first).
        info: the classes to predict (eval: its data module's); by default those the checkpoint was trained on.
        model_cfg: a model config to build instead of the stored one (eval's ``model_from_checkpoint=false``).

    Raises:
        ValueError: unreadable checkpoint, no stored model config, weights that do not fit, or a
            palette with another number of classes than the checkpoint (explained).
    """
    options = options or set_up_inference(cfg)
    if loaded is None:
        path = resolve_checkpoint(str(cfg.ckpt_path), cfg.paths.log_dir)
        checkpoint = load_checkpoint(path)
    else:
        path, checkpoint = loaded
    if model_cfg is None and checkpoint.get(CKPT_MODEL_CONFIG) is None:
        raise ValueError(f"checkpoint {path} holds no model config ({CKPT_MODEL_CONFIG!r}); expected a checkpoint written by tconvseg-train")
    info = info or class_info(checkpoint, cfg, path)
    system = rebuild_system(
        checkpoint, path, info, trusted=list(cfg.get("trusted_targets") or []), model_cfg=model_cfg, tta=options.tta, tiling=options.tiling
    )
    return Restored(system.eval(), info, path, checkpoint)


def rebuild_system(
    checkpoint: dict[str, Any], path: str, info: DatasetInfo, *, trusted: Sequence[str] = (), model_cfg: DictConfig | None = None,
    tta: dict[str, Any] | None = None, tiling: dict[str, Any] | None = None,
) -> SegmentationSystem:
    """The checkpoint's system with its weights loaded, for the classes of ``info``.

    The network comes from the model config stored in the checkpoint (vetted by
    `tconvseg.training.checkpoints.check_targets` against the allowlist and ``trusted``, pretrained-weight
    downloads switched off), or from ``model_cfg`` when given (``model_from_checkpoint=false``). Class
    weights come from the checkpoint; ``tta`` (``{"mode", "scales"}``) is the test-time augmentation.

    Raises:
        ValueError: no stored model config and no ``model_cfg``, a target outside the allowlist, or
            weights that do not fit the network (explained, see `load_weights`).
    """
    if model_cfg is None:
        stored = checkpoint.get(CKPT_MODEL_CONFIG)
        if stored is None:
            raise ValueError(f"checkpoint {path} holds no model config ({CKPT_MODEL_CONFIG!r}); expected a checkpoint written by tconvseg-train")
        check_targets(stored, path, trusted=trusted)
        model_cfg = OmegaConf.create(disable_weight_downloads(stored))
    system = build_system(model_cfg, info, tta=tta, tiling=tiling)
    load_weights(system, checkpoint, path)
    return system


def load_weights(system: SegmentationSystem, checkpoint: dict, path: str) -> None:
    """Load a checkpoint's weights, explaining any mismatch with the model instead of a torch dump."""
    state = checkpoint.get("state_dict")
    if state is None:
        raise ValueError(f"{path} holds no 'state_dict': not a Lightning checkpoint of a tconvseg model")
    own = system.state_dict()
    missing = sorted(set(own) - set(state))
    unexpected = sorted(set(state) - set(own))
    reshaped = sorted(k for k in set(own) & set(state) if own[k].shape != state[k].shape)
    if missing or unexpected or reshaped:
        trained = checkpoint.get(CKPT_MODEL_CONFIG, {}).get("net", {})
        parts = [f"{len(missing)} missing", f"{len(unexpected)} unexpected", f"{len(reshaped)} of another shape"]
        examples = (missing + unexpected + reshaped)[:5]
        shape_note = "; ".join(f"{k}: checkpoint {tuple(state[k].shape)} vs model {tuple(own[k].shape)}" for k in reshaped[:3])
        raise ValueError(
            f"checkpoint {path} was trained with another model: its weights do not fit the configured one "
            f"({', '.join(parts)} tensors, e.g. {examples}{'; ' + shape_note if shape_note else ''}). "
            f"The checkpoint's model config: encoder={trained.get('encoder', {}).get('name', trained.get('encoder'))}, "
            f"topology={trained.get('topology')}, decoder_channels={trained.get('decoder_channels')}. "
            "Evaluate with model_from_checkpoint=true, or with the model option used for training."
        )
    system.load_state_dict(state)


def class_info(checkpoint: dict[str, Any], cfg: DictConfig, path: str) -> DatasetInfo:
    """The `DatasetInfo` of the classes the checkpoint predicts (see `restore`)."""
    hparams = checkpoint.get("hyper_parameters", {})
    num_classes = hparams.get("num_classes")
    record = RunRecord.from_checkpoint(checkpoint)
    trained_on = record.dataset_name if record is not None else None
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
