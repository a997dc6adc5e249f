"""``evaluate(cfg)``: score a checkpoint on a split, print a table, write JSON. ``scripts/eval.py`` wraps it."""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

import lightning as L
import torch
from hydra.utils import instantiate
from omegaconf import DictConfig, OmegaConf
from rich.console import Console
from rich.table import Table

from tconvseg.runtime import (
    CKPT_MODEL_CONFIG,
    build_datamodule,
    build_system,
    load_checkpoint,
    load_weights,
    resolve_ckpt_path,
)

log = logging.getLogger(__name__)


def evaluate(cfg: DictConfig) -> tuple[dict[str, float], dict[str, Any]]:
    """Evaluate ``cfg.ckpt_path`` on ``cfg.split``.

    Returns ``(metrics, objects)``: metrics named ``<split>/mIoU``, ``<split>/IoU/<class>``, ...
    and ``cfg``, ``datamodule``, ``model``, ``trainer``, ``json_path``.
    """
    if cfg.get("seed") is not None:
        L.seed_everything(cfg.seed, workers=True)
    torch.set_float32_matmul_precision(cfg.get("float32_matmul_precision", "high"))
    lookup = OmegaConf.merge(cfg, {"task_name": "train"})  # "last" means the newest training run
    ckpt_path = resolve_ckpt_path(cfg.ckpt_path, lookup)
    checkpoint = load_checkpoint(ckpt_path)

    datamodule = build_datamodule(cfg)
    datamodule.splits["test"] = cfg.split  # the test loop scores whichever split was asked for
    model_cfg = cfg.model
    if cfg.get("model_from_checkpoint", True) and CKPT_MODEL_CONFIG in checkpoint:
        model_cfg = OmegaConf.create(checkpoint[CKPT_MODEL_CONFIG])
        log.info("Using the model config stored in the checkpoint (model_from_checkpoint=true)")
    model = build_system(model_cfg, datamodule)
    load_weights(model, checkpoint, ckpt_path)

    trainer: L.Trainer = instantiate(cfg.trainer, logger=False, callbacks=[], enable_checkpointing=False)
    (result,) = trainer.test(model, datamodule=datamodule, verbose=False)
    metrics = {f"{cfg.split}/{k.removeprefix('test/')}": float(v) for k, v in result.items()}

    json_path = Path(cfg.output_json) if cfg.get("output_json") else _run_dir(ckpt_path) / f"eval_{cfg.split}.json"
    report = {
        "checkpoint": str(Path(ckpt_path).resolve()),
        "split": cfg.split,
        "epoch": checkpoint.get("epoch"),
        "metrics": metrics,
    }
    json_path.parent.mkdir(parents=True, exist_ok=True)
    json_path.write_text(json.dumps(report, indent=2))
    print_report(metrics, cfg.split, list(datamodule.info.class_names))
    log.info("Wrote %s", json_path)
    return metrics, {"cfg": cfg, "datamodule": datamodule, "model": model, "trainer": trainer, "json_path": json_path}


def _run_dir(ckpt_path: str) -> Path:
    """The training run's folder: the parent of ``checkpoints/``, else the checkpoint's folder."""
    folder = Path(ckpt_path).resolve().parent
    return folder.parent if folder.name == "checkpoints" else folder


def print_report(metrics: dict[str, float], split: str, class_names: list[str], console: Console | None = None) -> None:
    """A per-class IoU table and the summary metrics, with rich."""
    console = console or Console()
    table = Table(title=f"{split}: per-class IoU (%)")
    table.add_column("class")
    table.add_column("IoU", justify="right")
    for name in class_names:
        value = metrics.get(f"{split}/IoU/{name}", float("nan"))
        table.add_row(name, f"{100 * value:.1f}")
    console.print(table)
    summary = Table(title=f"{split}: summary (%)")
    for key in ("mIoU", "pixel_acc", "mean_class_acc", "loss"):
        summary.add_column(key, justify="right")
    summary.add_row(*(f"{100 * metrics[f'{split}/{k}']:.2f}" if k != "loss" else f"{metrics[f'{split}/loss']:.4f}" for k in ("mIoU", "pixel_acc", "mean_class_acc", "loss")))
    console.print(summary)
