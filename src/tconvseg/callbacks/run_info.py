"""StoreRunInfo: the model config and the run record in every checkpoint."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import lightning as L

from tconvseg.training.checkpoints import CKPT_MODEL_CONFIG
from tconvseg.training.run_record import CKPT_RUN_IDENTITY, RunRecord


class StoreRunInfo(L.Callback):
    """Writes the model config and the run record into every checkpoint.

    The model config lets evaluation rebuild the same network; the record (`tconvseg.training.run_record.RunRecord`:
    experiment, model, data, the splits trained on) lets ``ckpt_path=last`` resume only a run of the same kind
    and evaluation say whether it scores items the run trained on.
    """

    def __init__(self, model_cfg: Mapping[str, Any], record: RunRecord) -> None:
        self.model_cfg = dict(model_cfg)
        self.record = record

    def on_save_checkpoint(self, trainer: L.Trainer, pl_module: L.LightningModule, checkpoint: dict) -> None:
        checkpoint[CKPT_MODEL_CONFIG] = self.model_cfg
        checkpoint[CKPT_RUN_IDENTITY] = self.record.to_dict()
