"""``export quantize=int8``: the exported ONNX model statically quantised, with its accuracy cost measured first.

Calibration reads ``calibration_images`` items spread over ``calibration_split``, a split the model trained on
(so no image it is scored on shapes the int8 ranges). The fp32 and int8 files are then scored on
``accuracy_split``, a split it did not train on (``auto``: the held-out drives of a ``data.holdout`` run, else
``val``). An int8 model that loses more than ``int8_max_miou_drop`` mIoU points is not written unless
``force_int8=true``; the figures go in ``export_report.json`` (key ``int8``) either way.
"""

from __future__ import annotations

import copy
import logging
import os
import time
from pathlib import Path
from typing import Any

from omegaconf import DictConfig, OmegaConf

from tconvseg.data.splits.holdout import HOLDOUT_SPLIT
from tconvseg.inference.int8 import (
    CALIBRATION_METHODS,
    DEFAULT_QUANT_FORMAT,
    QUANT_FORMATS,
    calibration_images,
    file_size_mb,
    quantize_int8,
    score_onnx,
)
from tconvseg.inference.restore import Restored
from tconvseg.tasks.evaluate import split_datamodule, trained_on_count
from tconvseg.training.run_record import RunRecord

log = logging.getLogger(__name__)

#: ``int8_max_miou_drop``'s default: one mIoU point, the protocol's smallest difference that counts on a drive.
DEFAULT_MAX_MIOU_DROP = 1.0


class QuantizationError(RuntimeError):
    """The int8 model loses more accuracy than allowed; it was not written."""


def int8_path_for(fp32_path: Path) -> Path:
    """``model.onnx`` -> ``model.int8.onnx``."""
    return fp32_path.with_name(f"{fp32_path.stem}.int8{fp32_path.suffix}")


def check_int8_options(cfg: DictConfig) -> dict[str, Any]:
    """The int8 options of ``cfg``, checked before anything is read (each bad value named with what was expected)."""
    if cfg.format != "onnx":
        raise ValueError(f"quantize=int8 applies to format=onnx (ONNX Runtime's quantisation), not format={cfg.format}; expected format=onnx")
    count, limit = cfg.get("calibration_images", 64), cfg.get("accuracy_images")
    if isinstance(count, bool) or not isinstance(count, int) or count < 1:
        raise ValueError(f"calibration_images={count!r} is invalid; expected a positive number of images (e.g. 64)")
    if limit is not None and (isinstance(limit, bool) or not isinstance(limit, int) or limit < 1):
        raise ValueError(f"accuracy_images={limit!r} is invalid; expected a positive number of items, or null for the whole split")
    method, quant_format = cfg.get("calibration_method", "minmax"), cfg.get("int8_format", DEFAULT_QUANT_FORMAT)
    if method not in CALIBRATION_METHODS:
        raise ValueError(f"calibration_method={method!r} is invalid; expected one of {', '.join(CALIBRATION_METHODS)}")
    if quant_format not in QUANT_FORMATS:
        raise ValueError(f"int8_format={quant_format!r} is invalid; expected one of {', '.join(QUANT_FORMATS)}")
    drop = cfg.get("int8_max_miou_drop", DEFAULT_MAX_MIOU_DROP)
    if isinstance(drop, bool) or not isinstance(drop, (int, float)) or drop < 0:
        raise ValueError(f"int8_max_miou_drop={drop!r} is invalid; expected mIoU points >= 0 (default {DEFAULT_MAX_MIOU_DROP})")
    return {
        "calibration_split": str(cfg.get("calibration_split", "train")), "calibration_images": count, "calibration_method": method,
        "int8_format": quant_format, "accuracy_split": str(cfg.get("accuracy_split", "auto")), "accuracy_images": limit, "max_miou_drop": float(drop),
        "force": bool(cfg.get("force_int8", False)),
    }


def _read_on_demand(cfg: DictConfig) -> DictConfig:
    """``cfg`` with a cached dataset switched to reading items on demand: a few dozen calibration images and one
    split are read, not every pair of every split decoded up front (CamVid's ``cache: true``)."""
    if OmegaConf.select(cfg, "data.dataset.cache") is not True:
        return cfg
    cfg = copy.deepcopy(cfg)
    cfg.data.dataset.cache = False
    return cfg


def export_int8(cfg: DictConfig, restored: Restored, fp32_path: Path, options: dict[str, Any]) -> dict[str, Any]:
    """Quantise ``fp32_path`` (calibrated on the training split), score both files, write the int8 file if its loss is allowed.

    Returns the report's ``int8`` entry: splits, item counts, both mIoU (%), the drop in points, file sizes, and
    ``written`` (the int8 path, or ``None`` when refused).

    Raises:
        ValueError: a calibration split the model did not train on, or an accuracy split it did (named, with counts).
        QuantizationError: the drop passes ``int8_max_miou_drop`` without ``force_int8`` (after the report is filled).
    """
    accuracy_split = options["accuracy_split"]
    if accuracy_split == "auto":
        record = RunRecord.from_checkpoint(restored.checkpoint)
        accuracy_split = HOLDOUT_SPLIT if record is not None and record.holdout is not None else "val"
    calibration_split = options["calibration_split"]
    if calibration_split == accuracy_split:
        raise ValueError(f"calibration_split and accuracy_split are both {accuracy_split!r}; expected the model's training split for "
                         "calibration (calibration_split=train) and one it did not train on for the accuracy cost")

    cfg = _read_on_demand(cfg)
    _, calibration = split_datamodule(cfg, restored.checkpoint, restored.path, calibration_split)
    trained, total, basis = trained_on_count(restored.checkpoint, calibration)
    if trained == 0:
        raise ValueError(
            f"calibration_split={calibration_split}: {restored.path} trained on none of its {total} items ({basis}); expected a split "
            f"it trained on (e.g. calibration_split=train), so that no image it is scored on sets the int8 ranges"
        )
    _, scoring = split_datamodule(cfg, restored.checkpoint, restored.path, accuracy_split)
    seen, scored_total, seen_basis = trained_on_count(restored.checkpoint, scoring)
    if seen:
        raise ValueError(
            f"accuracy_split={accuracy_split}: {restored.path} trained on {seen} of its {scored_total} items ({seen_basis}), so the "
            f"int8 cost measured there would not be the cost on new images. Expected a split it did not train on: the held-out "
            f"drives of a model trained with data.holdout (accuracy_split=holdout), or test"
        )
    if seen is None:
        log.warning("accuracy_split=%s: whether %s trained on it is not known (%s)", accuracy_split, restored.path, seen_basis)

    int8_path = int8_path_for(fp32_path)
    pending = int8_path.with_name(f".{int8_path.name}.pending")
    started = time.perf_counter()
    images = calibration_images(calibration.dataset("test"), options["calibration_images"])
    quantize_int8(fp32_path, pending, images, options["calibration_method"], options["int8_format"])
    quantize_seconds = time.perf_counter() - started
    info, limit = restored.info, options["accuracy_images"]
    dataset = scoring.dataset("test")
    fp32 = score_onnx(fp32_path, dataset, info, limit)
    int8 = score_onnx(pending, dataset, info, limit)
    drop = 100 * (fp32["mIoU"] - int8["mIoU"])
    entry = {
        "calibration_split": calibration_split, "calibration_images": len(images), "calibration_method": options["calibration_method"],
        "int8_format": options["int8_format"], "accuracy_split": accuracy_split,
        "scored_items": min(limit or len(dataset), len(dataset)), "trained_on_scored_items": seen,
        "fp32_mIoU": 100 * fp32["mIoU"], "int8_mIoU": 100 * int8["mIoU"], "mIoU_drop": drop, "max_miou_drop": options["max_miou_drop"],
        "fp32_per_class_IoU": {k.removeprefix("IoU/"): 100 * v for k, v in fp32.items() if k.startswith("IoU/")},
        "int8_per_class_IoU": {k.removeprefix("IoU/"): 100 * v for k, v in int8.items() if k.startswith("IoU/")},
        "fp32_mb": file_size_mb(fp32_path), "int8_mb": file_size_mb(pending), "quantize_seconds": quantize_seconds,
        "forced": False, "written": None,
    }
    log.info("int8 on %s (%d items): mIoU %.2f %% against fp32 %.2f %% (drop %.2f points)", accuracy_split, entry["scored_items"],
             entry["int8_mIoU"], entry["fp32_mIoU"], drop)
    if drop > options["max_miou_drop"] and not options["force"]:
        pending.unlink(missing_ok=True)
        entry["refused"] = (
            f"the int8 model loses {drop:.2f} mIoU points on {accuracy_split} ({entry['fp32_mIoU']:.2f} -> {entry['int8_mIoU']:.2f} %), "
            f"more than int8_max_miou_drop={options['max_miou_drop']}; it was not written. Expected a smaller loss: try "
            f"calibration_method=percentile or more calibration_images, or write it anyway with force_int8=true"
        )
        return entry
    entry["forced"] = drop > options["max_miou_drop"]
    os.replace(pending, int8_path)
    entry["written"] = str(int8_path.resolve())
    return entry
