"""Compose the real configs with cheap settings for tests."""

from __future__ import annotations

from pathlib import Path

from hydra import compose, initialize_config_dir
from omegaconf import DictConfig, open_dict

from tconvseg.entry import CONFIG_DIR as PACKAGED_CONFIGS

CONFIG_DIR = str(PACKAGED_CONFIGS)

#: Overrides that make any training config cheap and quiet on a CPU (in-process runs).
CHEAP = [
    "trainer=cpu",
    "logger=csv",
    "callbacks.rich_progress_bar=null",
    "+trainer.enable_progress_bar=false",
    "+trainer.enable_model_summary=false",
    "data.num_workers=0",
]
#: The tiny model on generated shapes, cheap and quiet.
SYNTH = ["data=synthetic", "model=tiny", *CHEAP]
#: Quiet script runs (subprocesses): no progress bars or model summary, no loader workers.
QUIET = ["callbacks.rich_progress_bar=null", "+trainer.enable_progress_bar=false", "+trainer.enable_model_summary=false", "data.num_workers=0"]


def compose_cfg(name: str, tmp_path: Path, overrides: list[str] | None = None, run: str = "run") -> DictConfig:
    """Compose ``configs/<name>.yaml`` with ``overrides``, outputs under ``tmp_path``."""
    with initialize_config_dir(config_dir=CONFIG_DIR, version_base="1.3"):
        cfg = compose(config_name=name, overrides=list(overrides or []), return_hydra_config=True)
    with open_dict(cfg):
        cfg.paths.log_dir = str(tmp_path / "logs")
        cfg.paths.output_dir = str(tmp_path / "logs" / cfg.task_name / "runs" / run)
        cfg.paths.data_dir = str(tmp_path / "data")
        del cfg.hydra
    return cfg
