"""LogRunToTrackers (always added by ``train``): what a team needs to find a run again in MLflow or W&B.

At the start of fitting, each experiment tracker among the trainer's loggers (``logger=mlflow``,
``logger=wandb``, alone or with csv / tensorboard) receives the resolved Hydra config as its
parameters, the config's ``tags`` as its tags and the run folder; at the end, the paths of the best
and the last checkpoint. CSV and TensorBoard runs keep all of that in the run folder itself, so they
get nothing extra (TensorBoard would also add a placeholder ``hp_metric``). Only global rank zero
writes. The libraries are imported only when such a logger is configured (the ``mlflow`` / ``wandb``
extras).
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import lightning as L
import numpy as np
from lightning.pytorch.loggers import Logger, MLFlowLogger, TensorBoardLogger, WandbLogger
from PIL import Image

log = logging.getLogger(__name__)


def trackers(loggers: Sequence[Logger]) -> list[Logger]:
    """The experiment trackers (MLflow, W&B) among ``loggers``."""
    return [logger for logger in loggers if isinstance(logger, (MLFlowLogger, WandbLogger))]


def add_labels(logger: Logger, labels: Sequence[str]) -> None:
    """The config's ``tags`` as searchable labels: MLflow tags ``tag.<label> = true``, W&B run tags."""
    if isinstance(logger, MLFlowLogger):
        for label in labels:
            logger.experiment.set_tag(logger.run_id, f"tag.{label}", "true")
    elif isinstance(logger, WandbLogger):
        run = logger.experiment
        run.tags = tuple(dict.fromkeys([*(run.tags or ()), *labels]))


def record_values(logger: Logger, values: Mapping[str, str]) -> None:
    """Key/value facts about the run (folder, checkpoint paths): MLflow tags, W&B summary values."""
    for key, value in values.items():
        if isinstance(logger, MLFlowLogger):
            logger.experiment.set_tag(logger.run_id, key, value)
        elif isinstance(logger, WandbLogger):
            logger.experiment.summary[key] = value


def log_picture(logger: Logger, picture: Image.Image, path: Path, key: str, step: int) -> None:
    """A picture already written to ``path``: a TensorBoard / W&B image under ``key``, an MLflow artifact in
    ``<key with _ for />/``; other loggers show no pictures."""
    if isinstance(logger, TensorBoardLogger):
        logger.experiment.add_image(key, np.asarray(picture), step, dataformats="HWC")
    elif isinstance(logger, MLFlowLogger):
        logger.experiment.log_artifact(logger.run_id, str(path), artifact_path=key.replace("/", "_"))
    elif isinstance(logger, WandbLogger):
        logger.log_image(key=key, images=[str(path)], step=step)


class LogRunToTrackers(L.Callback):
    """Logs the config, tags, run folder and checkpoint paths to the MLflow / W&B loggers of the trainer.

    Args:
        config: the resolved run config (a plain nested dict); trackers flatten it to ``a/b/c`` keys.
        tags: the config's ``tags`` (e.g. ``[camvid, cpu, recipe]``): MLflow tags ``tag.<name>``, W&B run tags.
        run_dir: the run folder (logs, checkpoints, Hydra's ``.hydra/``).
    """

    def __init__(self, config: Mapping[str, Any], tags: Sequence[str], run_dir: str | Path) -> None:
        self.config = dict(config)
        self.tags = [str(tag) for tag in tags]
        self.run_dir = str(run_dir)

    def on_fit_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if not trainer.is_global_zero:
            return
        for logger in trackers(trainer.loggers):
            logger.log_hyperparams(self.config)
            add_labels(logger, self.tags)
            record_values(logger, {"run_dir": self.run_dir})

    def on_fit_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if not trainer.is_global_zero or trainer.checkpoint_callback is None:
            return
        callback = trainer.checkpoint_callback
        paths = {"checkpoint.best": callback.best_model_path, "checkpoint.last": callback.last_model_path}
        paths = {key: str(Path(path).resolve()) for key, path in paths.items() if path}
        receivers = trackers(trainer.loggers)
        for logger in receivers:
            record_values(logger, paths)
        if paths and receivers:
            log.info("Checkpoint paths sent to the trackers: %s", paths)
