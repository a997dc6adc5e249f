"""``evaluate(cfg)``: score a checkpoint on a split, print a table, write JSON; ``main()`` is ``tconvseg-eval``."""

from __future__ import annotations

import copy
import json
import logging
from pathlib import Path
from typing import Any

import lightning as L
import torch
from omegaconf import DictConfig, OmegaConf, open_dict
from rich.console import Console
from rich.table import Table

from tconvseg.builders import build_datamodule, build_system, build_trainer
from tconvseg.callbacks import ConfusionMatrixRecorder, write_eval_pictures
from tconvseg.checkpoints import (
    CKPT_MODEL_CONFIG,
    CKPT_RUN_IDENTITY,
    atomic_write_text,
    check_targets,
    disable_weight_downloads,
    find_last_checkpoint,
    load_checkpoint,
    run_dir_of,
)
from tconvseg.data.holdout import HOLDOUT_SPLIT
from tconvseg.entry import run_hydra
from tconvseg.system import SegmentationSystem
from tconvseg.tta import tta_options

log = logging.getLogger(__name__)


def evaluate(cfg: DictConfig) -> tuple[dict[str, float], dict[str, Any]]:
    """Evaluate ``cfg.ckpt_path`` on ``cfg.split``: print the table, then write the JSON report.

    Under DDP each rank scores its own shard of the split (no item twice) and only rank zero
    prints and writes.

    The report goes to ``output_json`` or ``<run dir>/eval_<split>_<checkpoint stem>.json``,
    written atomically, so evaluating several checkpoints of one run keeps every result. Beside it:
    ``confusion_matrix_<split>_<stem>.csv`` / ``.png`` and ``samples_<split>_<stem>.png`` (the
    first ``samples`` items). ``tta=flip`` scores with flip test-time augmentation,
    ``tta=multiscale_flip`` with flipped copies at each of ``tta_scales`` (the report records both).

    Returns ``(metrics, objects)``: metrics named ``<split>/mIoU``, ``<split>/IoU/<class>``, ...
    and ``cfg``, ``datamodule``, ``model``, ``trainer``, ``json_path``.

    Raises:
        OSError: the report cannot be written (after the table has been printed), naming the path.
    """
    if cfg.get("seed") is not None:
        L.seed_everything(cfg.seed, workers=True)
    torch.set_float32_matmul_precision(cfg.get("float32_matmul_precision", "high"))
    tta, tta_scales = tta_options(cfg)
    ckpt_path = _checkpoint_path(cfg)
    checkpoint = load_checkpoint(ckpt_path)

    cfg = holdout_from_checkpoint(cfg, checkpoint, ckpt_path)
    datamodule = build_datamodule(cfg)
    _check_holdout_matches(datamodule, checkpoint, ckpt_path, cfg.split)
    datamodule.splits["test"] = cfg.split  # the test loop scores whichever split was asked for
    model_cfg = cfg.model
    if cfg.get("model_from_checkpoint", True) and CKPT_MODEL_CONFIG in checkpoint:
        stored = checkpoint[CKPT_MODEL_CONFIG]
        check_targets(stored, ckpt_path, trusted=list(cfg.get("trusted_targets") or []))
        model_cfg = OmegaConf.create(disable_weight_downloads(stored))
        log.info("Using the model config stored in the checkpoint (model_from_checkpoint=true)")
    model = build_system(model_cfg, datamodule.info)  # class weights: restored from the checkpoint
    load_weights(model, checkpoint, ckpt_path)
    model.tta, model.tta_scales = tta, tta_scales

    recorder = ConfusionMatrixRecorder()
    trainer = build_trainer(cfg, logger=False, callbacks=[recorder], enable_checkpointing=False)
    (result,) = trainer.test(model, datamodule=datamodule, verbose=False)
    metrics = {f"{cfg.split}/{k.removeprefix('test/')}": float(v) for k, v in result.items()}
    json_path = Path(cfg.output_json) if cfg.get("output_json") else run_dir_of(ckpt_path) / f"eval_{cfg.split}_{Path(ckpt_path).stem}.json"
    objects = {"cfg": cfg, "datamodule": datamodule, "model": model, "trainer": trainer, "json_path": json_path}
    if not trainer.is_global_zero:  # under DDP every rank holds the reduced metrics; one reports them
        return metrics, objects
    print_report(metrics, cfg.split, list(datamodule.info.class_names))

    report = {
        "checkpoint": str(Path(ckpt_path).resolve()),
        "split": cfg.split,
        "epoch": checkpoint.get("epoch"),
        "tta": _tta_record(model),
        "holdout": datamodule.holdout_identity(),
        "metrics": metrics,
    }
    try:
        json_path.parent.mkdir(parents=True, exist_ok=True)
        atomic_write_text(json.dumps(report, indent=2), json_path)
    except OSError as err:
        raise OSError(
            f"the evaluation finished (table above) but its report could not be written to {json_path}: "
            f"{type(err).__name__}: {err}. Expected a writable folder: pass output_json=<path> to write it elsewhere."
        ) from err
    log.info("Wrote %s", json_path)
    # pictures beside the JSON: confusion matrix (csv, png), image | truth | prediction
    tag = f"{cfg.split}_{Path(ckpt_path).stem}"
    pictures = write_eval_pictures(recorder, model, datamodule.dataset("test"), datamodule.info, json_path.parent, tag, cfg.get("samples", 4))
    log.info("Wrote %s", ", ".join(str(p) for p in pictures))
    return metrics, objects


def _stored_holdout(checkpoint: dict) -> dict[str, Any] | None:
    return ((checkpoint.get(CKPT_RUN_IDENTITY) or {}).get("data") or {}).get("holdout")


def holdout_from_checkpoint(cfg: DictConfig, checkpoint: dict, ckpt_path: str) -> DictConfig:
    """``cfg`` with the checkpoint's holdout (its held-out groups and pool) when ``data.holdout`` is null.

    So ``split=holdout`` scores exactly the groups the run held out, and ``split=train`` what it trained on,
    without repeating the split options. A config that sets ``data.holdout`` itself is returned as it is
    (:func:`_check_holdout_matches` then compares the two).
    """
    stored = _stored_holdout(checkpoint)
    if stored is None or OmegaConf.select(cfg, "data.holdout") is not None:
        return cfg
    cfg = copy.deepcopy(cfg)
    with open_dict(cfg):
        cfg.data.holdout = "sequence"
        cfg.data.holdout_groups = list(stored["held_out"])
        cfg.data.holdout_fold = None
        cfg.data.holdout_pool = list(stored["pool"])
    log.info("Holdout from %s: groups %s of the splits %s held out (split=holdout scores them)", ckpt_path, stored["held_out"], stored["pool"])
    return cfg


def _check_holdout_matches(datamodule: Any, checkpoint: dict, ckpt_path: str, split: str) -> None:
    """Refuse a holdout that differs from the checkpoint's; warn when ``split`` is a split the run trained on."""
    stored = _stored_holdout(checkpoint)
    if datamodule.holdout is None:
        if split == HOLDOUT_SPLIT:
            raise ValueError(
                f"split={HOLDOUT_SPLIT} but {ckpt_path} was trained without data.holdout and this config sets none; expected "
                f"data.holdout=sequence data.holdout_groups=[...] (the groups to score), or another split"
            )
        return
    current = datamodule.holdout_identity()
    if stored is not None and (stored["held_out"] != current["held_out"] or stored["pool"] != current["pool"]):
        raise ValueError(
            f"{ckpt_path} was trained holding out {stored['held_out']} of the splits {stored['pool']}, but this config holds out "
            f"{current['held_out']} of {current['pool']}: scores would mix seen and unseen groups. Expected the checkpoint's "
            f"holdout (leave data.holdout null to take it from the checkpoint)"
        )
    if stored is not None and split in stored["pool"] and split != datamodule.splits["train"]:
        log.warning("split=%s: %s trained on this split's items outside the held-out groups %s", split, ckpt_path, stored["held_out"])


def _tta_record(model: SegmentationSystem) -> dict[str, Any]:
    """The test-time augmentation the scores were computed with (scales only where the mode uses them)."""
    record: dict[str, Any] = {"mode": model.tta}
    if model.tta.startswith("multiscale"):
        record["scales"] = list(model.tta_scales)
    return record


def _task(cfg: DictConfig) -> float | None:
    metrics, _ = evaluate(cfg)
    return metrics.get(f"{cfg.split}/mIoU")


def main() -> None:
    """``tconvseg-eval`` / ``python scripts/eval.py ckpt_path=...``: Hydra overrides on the command line."""
    run_hydra(_task, "eval")


def _checkpoint_path(cfg: DictConfig) -> str:
    """``cfg.ckpt_path`` as an existing file; ``last``: the newest readable ``last.ckpt`` of training runs."""
    if cfg.ckpt_path == "last":
        return find_last_checkpoint(cfg.paths.log_dir, "train")
    if not Path(cfg.ckpt_path).is_file():
        raise FileNotFoundError(f"ckpt_path={cfg.ckpt_path}: no such checkpoint file")
    return str(cfg.ckpt_path)


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
    percentages = [f"{100 * metrics[f'{split}/{k}']:.2f}" for k in ("mIoU", "pixel_acc", "mean_class_acc")]
    summary.add_row(*percentages, f"{metrics[f'{split}/loss']:.4f}")
    console.print(summary)
