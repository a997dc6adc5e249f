"""``train(cfg)``: fit a model from a composed Hydra config. ``scripts/train.py`` wraps it."""

from __future__ import annotations

import logging
from typing import Any

import lightning as L
import torch
from hydra.utils import instantiate
from omegaconf import DictConfig, OmegaConf

from tconvseg.runtime import StoreModelConfig, build_datamodule, build_group, build_system, resolve_ckpt_path

log = logging.getLogger(__name__)


def train(cfg: DictConfig) -> tuple[dict[str, float], dict[str, Any]]:
    """Train (and optionally validate the best checkpoint / test) as the config says.

    Returns ``(metrics, objects)``: the final logged metrics as floats (``best/val/...`` for the
    re-validated best checkpoint), and ``cfg``, ``datamodule``, ``model``, ``trainer``.
    """
    if cfg.get("seed") is not None:
        L.seed_everything(cfg.seed, workers=True)
    torch.set_float32_matmul_precision(cfg.get("float32_matmul_precision", "high"))
    datamodule = build_datamodule(cfg)
    model = build_system(cfg.model, datamodule)
    callbacks = build_group(cfg.get("callbacks")) + [StoreModelConfig(cfg.model)]
    loggers = build_group(cfg.get("logger"))
    trainer: L.Trainer = instantiate(cfg.trainer, callbacks=callbacks, logger=loggers or False)
    _log_plan(cfg, model)

    metrics: dict[str, float] = {}
    if cfg.get("train", True):
        ckpt_path = resolve_ckpt_path(cfg.get("ckpt_path"), cfg)
        if ckpt_path:
            log.info("Resuming from %s", ckpt_path)
        trainer.fit(model, datamodule=datamodule, ckpt_path=ckpt_path)
        metrics.update(_floats(trainer.callback_metrics))

    best = trainer.checkpoint_callback.best_model_path if trainer.checkpoint_callback else ""
    if cfg.get("validate_best", True) and best:
        log.info("Validating the best checkpoint %s", best)
        (result,) = trainer.validate(model, datamodule=datamodule, ckpt_path=best, verbose=False)
        metrics.update({f"best/{k}": float(v) for k, v in result.items()})
        metrics["best/checkpoint_score"] = float(trainer.checkpoint_callback.best_model_score)
    if cfg.get("test", False):
        (result,) = trainer.test(model, datamodule=datamodule, ckpt_path=best or None, verbose=False)
        metrics.update({k: float(v) for k, v in result.items()})
    objects = {"cfg": cfg, "datamodule": datamodule, "model": model, "trainer": trainer, "best_checkpoint": best}
    return metrics, objects


def _floats(values: dict[str, Any]) -> dict[str, float]:
    return {k: float(v) for k, v in values.items()}


def _log_plan(cfg: DictConfig, model: L.LightningModule) -> None:
    params = sum(p.numel() for p in model.parameters())
    log.info("Model: %s, %.2fM parameters", OmegaConf.select(cfg, "model.net.encoder.name") or "custom", params / 1e6)
    log.info("Output dir: %s", cfg.paths.output_dir)
