"""StoreRunInfo: the model config and the run identity in every checkpoint."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import lightning as L

from tconvseg.checkpoints import CKPT_MODEL_CONFIG, CKPT_RUN_IDENTITY


class StoreRunInfo(L.Callback):
    """Writes the model config and the run identity into every checkpoint.

    The model config lets evaluation rebuild the same network; the identity (experiment, model,
    data) lets ``ckpt_path=last`` resume only a run of the same kind.
    """

    def __init__(self, model_cfg: Mapping[str, Any], identity: Mapping[str, Any]) -> None:
        self.model_cfg = dict(model_cfg)
        self.identity = dict(identity)

    def on_save_checkpoint(self, trainer: L.Trainer, pl_module: L.LightningModule, checkpoint: dict) -> None:
        checkpoint[CKPT_MODEL_CONFIG] = self.model_cfg
        checkpoint[CKPT_RUN_IDENTITY] = self.identity
