"""Helpers shared by the entry points: building objects from config, checkpoints, run folders."""

from __future__ import annotations

import glob
import os
from pathlib import Path
from typing import Any

import lightning as L
import torch
from hydra.utils import instantiate
from omegaconf import DictConfig, OmegaConf

from tconvseg.data import SegmentationDataModule
from tconvseg.system import SegmentationSystem

#: Key under which the training run's model config is stored inside each checkpoint.
CKPT_MODEL_CONFIG = "tconvseg_model_config"


class ConfigError(ValueError):
    """A config value that cannot work, explained."""


def config_dir() -> Path:
    """The ``configs/`` folder: ``$TCONVSEG_CONFIG_DIR``, else the one beside ``src/`` in a checkout."""
    env = os.environ.get("TCONVSEG_CONFIG_DIR")
    candidate = Path(env) if env else Path(__file__).resolve().parents[2] / "configs"
    if not (candidate / "train.yaml").is_file():
        raise FileNotFoundError(
            f"no Hydra configs at {candidate} (expected train.yaml there). Install tconvseg from a "
            "checkout with `pip install -e .`, or point TCONVSEG_CONFIG_DIR at the configs/ folder."
        )
    return candidate


def build_datamodule(cfg: DictConfig) -> SegmentationDataModule:
    datamodule = instantiate(cfg.data)
    if not isinstance(datamodule, SegmentationDataModule):
        raise ConfigError(f"data config builds a {type(datamodule).__name__}, expected a SegmentationDataModule")
    return datamodule


def build_system(model_cfg: DictConfig | dict, datamodule: SegmentationDataModule) -> SegmentationSystem:
    """The training system from a ``model`` config, with classes taken from the data module."""
    info = datamodule.info
    # _convert_="all": plain lists / dicts in the hyperparameters keep checkpoints loadable with
    # torch.load(weights_only=True).
    system = instantiate(
        model_cfg,
        _convert_="all",
        net={"num_classes": info.num_classes},
        num_classes=info.num_classes,
        ignore_index=info.ignore_index,
        class_names=list(info.class_names),
    )
    if not isinstance(system, SegmentationSystem):
        raise ConfigError(f"model config builds a {type(system).__name__}, expected a SegmentationSystem")
    return system


def build_group(cfg: DictConfig | None) -> list[Any]:
    """Instantiate every ``_target_`` entry of a callbacks / logger group (``None`` → empty)."""
    if not cfg:
        return []
    return [instantiate(node) for node in cfg.values() if isinstance(node, DictConfig) and "_target_" in node]


class StoreModelConfig(L.Callback):
    """Writes the model config into every checkpoint, so evaluation can rebuild the same network."""

    def __init__(self, model_cfg: DictConfig) -> None:
        self.model_cfg = OmegaConf.to_container(model_cfg, resolve=True)

    def on_save_checkpoint(self, trainer: L.Trainer, pl_module: L.LightningModule, checkpoint: dict) -> None:
        checkpoint[CKPT_MODEL_CONFIG] = self.model_cfg


def resolve_ckpt_path(ckpt_path: str | None, cfg: DictConfig) -> str | None:
    """``None`` / an existing file as is; ``"last"``: the newest ``last.ckpt`` of this task's runs."""
    if ckpt_path in (None, ""):
        return None
    if ckpt_path == "last":
        pattern = str(Path(cfg.paths.log_dir) / cfg.task_name / "runs" / "*" / "checkpoints" / "last*.ckpt")
        found = sorted(glob.glob(pattern), key=os.path.getmtime)
        if not found:
            raise FileNotFoundError(
                f"ckpt_path=last: no last.ckpt found under {pattern}. Give the checkpoint's path instead "
                "(ckpt_path=logs/train/runs/<run>/checkpoints/last.ckpt)."
            )
        return found[-1]
    if not Path(ckpt_path).is_file():
        raise FileNotFoundError(f"ckpt_path={ckpt_path}: no such checkpoint file")
    return str(ckpt_path)


def load_checkpoint(path: str) -> dict:
    try:
        return torch.load(path, map_location="cpu", weights_only=False)
    except Exception as err:  # noqa: BLE001 - any failure means the file is not a usable checkpoint
        raise ValueError(f"cannot read checkpoint {path}: {type(err).__name__}: {err}") from None


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
