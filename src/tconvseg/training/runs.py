"""What a finished training run reached, read from its folder: model, scores, time budget.

A run folder is what ``train(cfg)`` leaves under ``logs/train/runs/<timestamp>``: ``checkpoints/``
(``last.ckpt`` carries the model config, the checkpoint callback's best score and the time
budget's state), ``csv/metrics.csv`` (the logged metrics) and ``.hydra/overrides.yaml`` (the
command line).
"""

from __future__ import annotations

import csv
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from omegaconf import OmegaConf

from tconvseg.callbacks import STATE_KEY
from tconvseg.training.checkpoints import (
    CKPT_MODEL_CONFIG,
    check_targets,
    disable_weight_downloads,
    load_checkpoint,
    stored_best,
)
from tconvseg.training.run_record import RunRecord


@dataclass
class RunSummary:
    """One run's facts; scores are fractions in ``[0, 1]``, times in seconds, ``None`` when not recorded."""

    folder: Path
    overrides: list[str]
    model_cfg: dict[str, Any]
    num_classes: int
    best_val_miou: float | None
    final_val_miou: float | None
    final_train_miou: float | None
    budget_s: float | None
    spent_s: float | None

    @property
    def label(self) -> str:
        shown = [o for o in self.overrides if not o.startswith(("paths.", "hydra.", "ckpt_path"))]
        return f"{self.folder.name} {' '.join(shown)}".strip()


def _last_logged(metrics_csv: Path, column: str) -> float | None:
    if not metrics_csv.is_file():
        return None
    value = None
    with metrics_csv.open(newline="") as handle:
        for row in csv.DictReader(handle):
            if row.get(column) not in (None, ""):
                value = float(row[column])
    return value


def read_run(folder: str | Path) -> RunSummary:
    """Summarise the run in ``folder``.

    The best val mIoU is the checkpoint callback's best score (it survives resumes, which restart
    ``metrics.csv``); the final val and train mIoU are the last values in ``metrics.csv``.

    Raises:
        FileNotFoundError: ``folder`` holds no ``checkpoints/last*.ckpt``.
        tconvseg.training.checkpoints.UnsafeCheckpointError: its model config names a part off the allowlist.
    """
    folder = Path(folder)
    lasts = sorted((folder / "checkpoints").glob("last*.ckpt"), key=lambda p: p.stat().st_mtime)
    if not lasts:
        raise FileNotFoundError(
            f"--runs {folder}: no checkpoints/last.ckpt in it; expected a training run folder such as "
            "logs/train/runs/<timestamp> (trained with the default callbacks, which save last.ckpt)"
        )
    checkpoint = load_checkpoint(lasts[-1])
    model_cfg = checkpoint.get(CKPT_MODEL_CONFIG)
    if model_cfg is None:
        raise ValueError(f"{lasts[-1]} stores no model config ({CKPT_MODEL_CONFIG}); expected a checkpoint written by tconvseg's train")
    check_targets(model_cfg, str(lasts[-1]))
    record = RunRecord.from_checkpoint(checkpoint)
    states = checkpoint.get("callbacks", {})
    _, best_value, _ = stored_best(checkpoint)
    budget = states.get(STATE_KEY) or {}
    overrides_file = folder / ".hydra" / "overrides.yaml"
    overrides = [str(o) for o in OmegaConf.load(overrides_file)] if overrides_file.is_file() else []
    metrics_csv = folder / "csv" / "metrics.csv"
    return RunSummary(
        folder=folder,
        overrides=overrides,
        model_cfg=disable_weight_downloads(model_cfg),
        num_classes=int((record.num_classes if record else None) or _classes_from_state(checkpoint)),
        best_val_miou=best_value if best_value is None or math.isfinite(best_value) else None,
        final_val_miou=_last_logged(metrics_csv, "val/mIoU"),
        final_train_miou=_last_logged(metrics_csv, "train/mIoU"),
        budget_s=budget.get("budget"),
        spent_s=budget.get("elapsed"),
    )


def _classes_from_state(checkpoint: dict) -> int:
    weights = checkpoint.get("state_dict", {}).get("class_weights")
    if weights is None:
        raise ValueError("the checkpoint records neither its number of classes nor class weights")
    return int(weights.numel())
