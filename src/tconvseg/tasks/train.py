"""``train(cfg)``: fit a model from a composed Hydra config; ``main()`` is the ``tconvseg-train`` entry point."""

from __future__ import annotations

import copy
import logging
import os
import time
import warnings
from pathlib import Path
from typing import Any

import lightning as L
import torch
from lightning.pytorch.utilities.exceptions import SIGTERMException
from omegaconf import DictConfig, OmegaConf, open_dict

from tconvseg.callbacks import LogRunToTrackers, StopOnNonFinite, StoreRunInfo, TimeBudget, finished_budget, process_started_at
from tconvseg.data import SegmentationDataModule
from tconvseg.entry import in_multirun, objective, run_hydra
from tconvseg.training.builders import build_datamodule, build_group, build_system, build_trainer, check_input_normalization, class_weights_for
from tconvseg.training.checkpoints import (
    find_last_checkpoint,
    load_checkpoint,
    resume_checkpoint_path,
    run_dir_of,
    stored_best,
)
from tconvseg.training.cluster import requeued_checkpoint
from tconvseg.training.run_record import RunRecord, build_run_record, describe
from tconvseg.training.selection import check_selection, without_held_out_selection

log = logging.getLogger(__name__)

#: Exit status after SIGTERM (128 + 15, what shells report for a process ended by that signal).
SIGTERM_EXIT_CODE = 143


def _warn_if_renamed(cfg: DictConfig) -> None:
    renamed = cfg.get("experiment_renamed")
    if renamed:
        warnings.warn(
            f"experiment={renamed.old} is a deprecated name, kept for one release: use experiment={renamed.new} "
            "(the same configuration; CHANGELOG.md lists the renamed experiments)",
            FutureWarning,
            stacklevel=3,
        )


def train(cfg: DictConfig, *, started_at: float | None = None) -> tuple[dict[str, float], dict[str, Any]]:
    """Train (and optionally validate the best checkpoint / test) as the config says.

    Returns ``(metrics, objects)``: the final logged metrics as floats (``best/val/...`` for the
    re-validated best checkpoint), and ``cfg``, ``datamodule``, ``model``, ``trainer``,
    ``best_checkpoint``, ``finished_before`` (the resumed run had already finished).

    Resuming (``ckpt_path=last`` or a path) continues in the checkpoint's own run folder, so the
    best score and top-k survive; a run of another experiment / model / data is refused. A SLURM
    job that was requeued resumes from its own run folder without being asked.

    Raises:
        SystemExit: with status 143 after SIGTERM, once the last complete checkpoint is on disk.
        tconvseg.callbacks.NonFiniteError: a NaN / infinite loss or gradient.

    A time budget (``callbacks.time_budget``) counts from ``started_at`` (``time.monotonic`` seconds; the
    command line passes the process's start), else from this call.
    """
    started_at = time.monotonic() if started_at is None else started_at
    cfg = copy.deepcopy(cfg)
    _warn_if_renamed(cfg)
    _set_up_process(cfg)
    datamodule = build_datamodule(cfg)
    held_out = (datamodule.holdout_identity() or {}).get("held_out")
    select_on_holdout = bool(cfg.get("select_on_holdout", False))
    check_selection(held_out, datamodule.info, cfg.get("optimized_metric"), in_multirun(), select_on_holdout)
    model = build_system(cfg.model, datamodule.info, class_weights_for(cfg.model, datamodule))
    check_input_normalization(model.net, cfg.get("data"))
    record = build_run_record(cfg, datamodule)
    resume = _resume_into_its_folder(cfg, record)
    trainer = _build_trainer(cfg, record, started_at, held_out, select_on_holdout)
    _log_plan(cfg, model)
    _log_splits(datamodule)

    metrics: dict[str, float] = {}
    objects: dict[str, Any] = {"cfg": cfg, "datamodule": datamodule, "model": model, "trainer": trainer, "finished_before": False}
    if resume is not None and (finished := _finished_run(resume, trainer)) is not None:
        metrics.update(finished[0])
        objects.update(finished_before=True, best_checkpoint=finished[1])
        return metrics, objects
    if cfg.get("train", True):
        _fit(trainer, model, datamodule, resume)
        metrics.update({k: float(v) for k, v in trainer.callback_metrics.items()})
    # A checkpoint callback without a monitor keeps the newest state, not a best one.
    best = trainer.checkpoint_callback.best_model_path if trainer.checkpoint_callback and trainer.checkpoint_callback.monitor else ""
    metrics.update(_after_fit(cfg, trainer, model, datamodule, best))
    objects["best_checkpoint"] = best
    return metrics, objects


def _set_up_process(cfg: DictConfig) -> None:
    """Threads, seeds and matmul precision, before anything is built."""
    if cfg.get("threads"):
        torch.set_num_threads(int(cfg.threads))
    if cfg.get("seed") is not None:
        L.seed_everything(cfg.seed, workers=True)
    torch.set_float32_matmul_precision(cfg.get("float32_matmul_precision", "high"))


def _resume_into_its_folder(cfg: DictConfig, record: RunRecord) -> str | None:
    """The checkpoint to resume from (asked for, or a requeued SLURM job's own); ``cfg`` then writes into its run folder."""
    if not cfg.get("train", True):
        return None
    resume = _resume_point(cfg, record) or requeued_checkpoint(cfg.paths.output_dir, record)
    if resume is not None:
        run_dir = run_dir_of(resume)
        log.info("Resuming from %s; writing on in its run folder %s", resume, run_dir)
        with open_dict(cfg):
            cfg.paths.output_dir = str(run_dir)
    return resume


def _build_trainer(
    cfg: DictConfig, record: RunRecord, started_at: float, held_out: list[str] | None = None, select_on_holdout: bool = False
) -> L.Trainer:
    """The Trainer with the configured callbacks and loggers, plus the ones every run has; the time budget's clock set.

    Under a holdout a best-by-val checkpoint is left out unless ``select_on_holdout=true`` (`tconvseg.training.selection`).
    """
    configured, dropped = without_held_out_selection(build_group(cfg.get("callbacks")), held_out, select_on_holdout)
    if dropped:
        log.info("Held out %s: no best-by-held-out checkpoint (%s left out; select_on_holdout=true keeps it)", held_out, ", ".join(dropped))
    callbacks = [
        *configured,
        StoreRunInfo(_container(cfg.model), record),
        StopOnNonFinite(),
        LogRunToTrackers(_container(cfg), list(cfg.get("tags") or []), cfg.paths.output_dir),
    ]
    for callback in callbacks:
        if isinstance(callback, TimeBudget):
            callback.start_clock(started_at)
    loggers = build_group(cfg.get("logger"), "logger")
    return build_trainer(cfg, callbacks=callbacks, logger=loggers or False)


def _finished_run(resume: str, trainer: L.Trainer) -> tuple[dict[str, float], str] | None:
    """``(metrics, best checkpoint)`` of a resumed run that has nothing left to train, else ``None``."""
    checkpoint = load_checkpoint(resume)
    done = _finished(checkpoint, trainer)
    if not done:
        return None
    log.info("The run of %s is finished (%s): nothing to train. Start a new run without ckpt_path, or raise the limit.", resume, done)
    best, score, monitor = stored_best(checkpoint)
    return ({"best/checkpoint_score": score, f"best/{monitor}": score} if score is not None else {}), best


def _fit(trainer: L.Trainer, model: L.LightningModule, datamodule: SegmentationDataModule, resume: str | None) -> None:
    """``trainer.fit``; after SIGTERM, name the last complete checkpoint and exit with status 143."""
    try:
        trainer.fit(model, datamodule=datamodule, ckpt_path=resume, weights_only=True)
    except SIGTERMException:
        last = resume_checkpoint_path(trainer.checkpoint_callbacks) or "none written yet"
        log.error(
            "Training stopped by SIGTERM at epoch %d, step %d. Last complete checkpoint: %s. Resume with "
            "ckpt_path=last (the same experiment) to continue from it.", trainer.current_epoch, trainer.global_step, last,
        )
        raise SystemExit(SIGTERM_EXIT_CODE) from None


def _after_fit(cfg: DictConfig, trainer: L.Trainer, model: L.LightningModule, datamodule: SegmentationDataModule, best: str) -> dict[str, float]:
    """``validate_best``: the best checkpoint validated again (``best/...``); ``test``: the test split scored with it."""
    metrics: dict[str, float] = {}
    if cfg.get("validate_best", True) and best:
        log.info("Validating the best checkpoint %s", best)
        (result,) = trainer.validate(model, datamodule=datamodule, ckpt_path=best, verbose=False, weights_only=True)
        metrics.update({f"best/{k}": float(v) for k, v in result.items()})
        metrics["best/checkpoint_score"] = float(trainer.checkpoint_callback.best_model_score)
    if cfg.get("test", False):
        (result,) = trainer.test(model, datamodule=datamodule, ckpt_path=best or None, verbose=False, weights_only=True)
        metrics.update({k: float(v) for k, v in result.items()})
    return metrics


def main() -> None:
    """``tconvseg-train`` / ``python scripts/train.py``: Hydra overrides on the command line.

    The first job's time budget includes the interpreter's and Hydra's start-up; later jobs of a
    multirun, and jobs that a launcher runs in other processes, count from their own start.
    """
    starts = {os.getpid(): process_started_at()}

    def task(cfg: DictConfig) -> float | None:
        metrics, _ = train(cfg, started_at=starts.pop(os.getpid(), None))
        return objective(metrics, cfg)  # what a Hydra sweeper optimises

    run_hydra(task, "train")


def _container(node: Any) -> Any:
    return OmegaConf.to_container(node, resolve=True) if isinstance(node, DictConfig) else node


def _resume_point(cfg: DictConfig, record: RunRecord) -> str | None:
    """The checkpoint to resume from, after checking it is readable and of the same run."""
    ckpt_path = cfg.get("ckpt_path")
    if ckpt_path in (None, ""):
        return None
    if ckpt_path == "last":
        return find_last_checkpoint(cfg.paths.log_dir, cfg.task_name, record)
    if not Path(ckpt_path).is_file():
        raise FileNotFoundError(f"ckpt_path={ckpt_path}: no such checkpoint file")
    stored = RunRecord.from_checkpoint(load_checkpoint(ckpt_path))
    differ = record.differences(stored)
    if differ:
        raise ValueError(
            f"ckpt_path={ckpt_path} belongs to another run ({describe(stored)}) than this one "
            f"({record.describe()}): {', '.join(differ)} differ. Expected a checkpoint of the same experiment, "
            "model and data; to fine-tune from it instead, start a new run with matching model options."
        )
    return str(ckpt_path)


def _finished(checkpoint: dict, trainer: L.Trainer) -> str | None:
    """Why the checkpointed run has nothing left to do under ``trainer``'s limits, else ``None``."""
    # "processed": an end-of-epoch checkpoint is written during validation, before Lightning counts
    # the epoch "completed".
    progress = checkpoint.get("loops", {}).get("fit_loop", {}).get("epoch_progress", {}).get("current", {})
    epochs = progress.get("processed")
    steps = checkpoint.get("global_step", 0)
    if trainer.max_epochs not in (None, -1) and epochs is not None and epochs >= trainer.max_epochs:
        return f"{epochs} of max_epochs={trainer.max_epochs} epochs done"
    if trainer.max_steps not in (None, -1) and steps >= trainer.max_steps:
        return f"{steps} of max_steps={trainer.max_steps} steps done"
    return finished_budget(checkpoint)


def _log_plan(cfg: DictConfig, model: L.LightningModule) -> None:
    params = sum(p.numel() for p in model.parameters())
    name = OmegaConf.select(cfg, "model.net.encoder.name") or OmegaConf.select(cfg, "model.net.name")  # encoder, or a peer's name
    log.info("Model: %s, %.2fM parameters", name or "custom", params / 1e6)
    log.info("Output dir: %s", cfg.paths.output_dir)


def _log_splits(datamodule: SegmentationDataModule) -> None:
    if datamodule.pools_train_splits:
        val = datamodule.splits["val"]
        note = f"; validation on {val!r}, one of them, measures fit, not generalisation" if val in datamodule.train_splits else ""
        log.info("Training on the splits %s together (%d items)%s", datamodule.train_splits, len(datamodule.dataset("train")), note)
    manifest = datamodule.split_manifest()
    if manifest is None:
        return
    log.info(
        "Holdout (%s) over the splits %s: held out %s -> validation %s; training %s. Held-out items: %s",
        manifest["mode"], manifest["pool"], manifest["held_out"], manifest["val_groups"], manifest["train_groups"],
        " ".join(manifest["val_items"]),
    )
