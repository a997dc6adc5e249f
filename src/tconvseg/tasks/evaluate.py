"""``evaluate(cfg)``: score a checkpoint on a split, print a table, write JSON; ``main()`` is ``tconvseg-eval``."""

from __future__ import annotations

import copy
import json
import logging
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from omegaconf import DictConfig, OmegaConf, open_dict
from rich.console import Console
from rich.table import Table

from tconvseg.callbacks import BatchNormAdaptation, ConfusionMatrixRecorder
from tconvseg.data import SegmentationDataModule
from tconvseg.data.splits.holdout import HOLDOUT_SPLIT, HoldoutOptions
from tconvseg.data.splits.pooled import item_sources
from tconvseg.entry import run_hydra
from tconvseg.inference.eval_pictures import write_eval_pictures
from tconvseg.inference.restore import resolve_checkpoint, restore, set_up_inference
from tconvseg.inference.trained_items import trained_items
from tconvseg.training.atomic import atomic_write_text
from tconvseg.training.builders import build_datamodule, build_trainer, check_input_normalization
from tconvseg.training.checkpoints import CKPT_MODEL_CONFIG, load_checkpoint, run_dir_of
from tconvseg.training.run_record import RunRecord

log = logging.getLogger(__name__)


def evaluate(cfg: DictConfig) -> tuple[dict[str, float], dict[str, Any]]:
    """Evaluate ``cfg.ckpt_path`` on ``cfg.split``: print the table, then write the JSON report.

    Under DDP each rank scores its own shard of the split (no item twice) and only rank zero
    prints and writes.

    The report goes to ``output_json`` or ``<run dir>/eval_<split>_<checkpoint stem>.json``,
    written atomically, so evaluating several checkpoints of one run keeps every result. Beside it:
    ``confusion_matrix_<split>_<stem>.csv`` / ``.png`` and ``samples_<split>_<stem>.png`` (the
    first ``samples`` items). ``tta=flip`` scores with flip test-time augmentation,
    ``tta=multiscale_flip`` with flipped copies at each of ``tta_scales`` (the report records both);
    ``adapt_bn=true`` first recomputes the batch-norm statistics from the split's images (`BatchNormAdaptation`).

    Returns ``(metrics, objects)``: metrics named ``<split>/mIoU``, ``<split>/IoU/<class>``, ...
    and ``cfg``, ``datamodule``, ``model``, ``trainer``, ``json_path``.

    Raises:
        OSError: the report cannot be written (after the table has been printed), naming the path.
    """
    options = set_up_inference(cfg)  # options checked before anything is loaded
    adapt_bn = options.adapt_bn
    ckpt_path = resolve_checkpoint(str(cfg.ckpt_path), cfg.paths.log_dir)
    checkpoint = load_checkpoint(ckpt_path)
    cfg, datamodule = split_datamodule(cfg, checkpoint, ckpt_path, cfg.split)
    model = restore(cfg, options, loaded=(ckpt_path, checkpoint), info=datamodule.info, model_cfg=_model_cfg(cfg, checkpoint, ckpt_path)).system
    check_input_normalization(model.net, cfg.get("data"))

    recorder = ConfusionMatrixRecorder()
    adaptation = [BatchNormAdaptation()] if adapt_bn else []
    trainer = build_trainer(cfg, logger=False, callbacks=[recorder, *adaptation], enable_checkpointing=False)
    (result,) = trainer.test(model, datamodule=datamodule, verbose=False)
    metrics = {f"{cfg.split}/{k.removeprefix('test/')}": float(v) for k, v in result.items()}
    json_path = Path(cfg.output_json) if cfg.get("output_json") else run_dir_of(ckpt_path) / f"eval_{cfg.split}_{Path(ckpt_path).stem}.json"
    objects = {"cfg": cfg, "datamodule": datamodule, "model": model, "trainer": trainer, "json_path": json_path}
    if not trainer.is_global_zero:  # under DDP every rank holds the reduced metrics; one reports them
        return metrics, objects
    trained_on = trained_on_report(checkpoint, ckpt_path, datamodule, cfg.split)  # the split is built (by the test loop) by now
    print_report(metrics, cfg.split, list(datamodule.info.class_names))
    report = {
        "checkpoint": str(Path(ckpt_path).resolve()), "split": cfg.split, "epoch": checkpoint.get("epoch"),
        "tta": model.tta.record(), "adapt_bn": adapt_bn, "tiling": model.inference.record(), "holdout": datamodule.holdout_identity(),
        **trained_on, "metrics": metrics,
    }
    _write_report(report, json_path)
    # pictures beside the JSON: confusion matrix (csv, png), image | truth | prediction
    tag = f"{cfg.split}_{Path(ckpt_path).stem}"
    pictures = write_eval_pictures(recorder, model, datamodule.dataset("test"), datamodule.info, json_path.parent, tag, cfg.get("samples", 4))
    log.info("Wrote %s", ", ".join(str(p) for p in pictures))
    return metrics, objects


def split_datamodule(cfg: DictConfig, checkpoint: dict, ckpt_path: str, split: str) -> tuple[DictConfig, SegmentationDataModule]:
    """``(cfg, datamodule)``: the data module whose test role serves ``split`` as the checkpoint's run defined it.

    The checkpoint's holdout is taken when ``data.holdout`` is null (`holdout_from_checkpoint`, which returns the
    ``cfg`` used), and a config that holds out other groups, or ``split=holdout`` for a run that held nothing
    out, is refused. What eval scores, and what export's int8 check calibrates and scores on.
    """
    if cfg.get("split") != split:
        cfg = copy.deepcopy(cfg)
        with open_dict(cfg):
            cfg.split = split
    cfg = holdout_from_checkpoint(cfg, checkpoint, ckpt_path)
    datamodule = build_datamodule(cfg)
    _check_holdout_matches(datamodule, checkpoint, ckpt_path, split)
    datamodule.splits["test"] = split  # the test loop scores whichever split was asked for
    return cfg, datamodule


def _model_cfg(cfg: DictConfig, checkpoint: dict, ckpt_path: str) -> DictConfig | None:
    """``None`` to build the checkpoint's stored model config; ``cfg.model`` with ``model_from_checkpoint=false``."""
    from_checkpoint = cfg.get("model_from_checkpoint", True) and CKPT_MODEL_CONFIG in checkpoint
    if not from_checkpoint and cfg.get("model") is None:
        raise ValueError(
            f"model_from_checkpoint=false (or {ckpt_path} stores no model config) but no model option is given; expected "
            f"model=<the option it was trained with> (e.g. model=fcn8s_resnet18), or model_from_checkpoint=true"
        )
    if from_checkpoint:
        log.info("Using the model config stored in the checkpoint (model_from_checkpoint=true)")
    return None if from_checkpoint else cfg.model


def _write_report(report: dict[str, Any], json_path: Path) -> None:
    """The JSON report, written atomically; an unwritable place is explained (the table is already printed)."""
    try:
        json_path.parent.mkdir(parents=True, exist_ok=True)
        atomic_write_text(json.dumps(report, indent=2), json_path)
    except OSError as err:
        raise OSError(
            f"the evaluation finished (table above) but its report could not be written to {json_path}: "
            f"{type(err).__name__}: {err}. Expected a writable folder: pass output_json=<path> to write it elsewhere."
        ) from err
    log.info("Wrote %s", json_path)


def _stored_holdout(checkpoint: dict) -> Mapping[str, Any] | None:
    record = RunRecord.from_checkpoint(checkpoint)
    return record.holdout if record is not None else None


def holdout_from_checkpoint(cfg: DictConfig, checkpoint: dict, ckpt_path: str) -> DictConfig:
    """``cfg`` with the checkpoint's holdout (its held-out groups and pool) when ``data.holdout`` is null.

    So ``split=holdout`` scores exactly the groups the run held out, and ``split=train`` what it trained on,
    without repeating the split options. A config that sets ``data.holdout`` itself is returned as it is
    (`_check_holdout_matches` then compares the two), and so is one whose ``split`` is neither ``holdout`` nor
    a split of the pool: the holdout does not change what such a split holds (e.g. CamVid's val when only
    train was pooled, or another dataset's images), so its pool is not read.
    """
    stored = _stored_holdout(checkpoint)
    if stored is None or OmegaConf.select(cfg, "data.holdout") is not None:
        return cfg
    if cfg.split != HOLDOUT_SPLIT and cfg.split not in stored["pool"]:
        return cfg
    cfg = copy.deepcopy(cfg)
    with open_dict(cfg):
        cfg.data.update(HoldoutOptions.sequence(stored["held_out"], pool=stored["pool"]).to_config())
    log.info("Holdout from %s: groups %s of the splits %s held out (split=holdout scores them)", ckpt_path, stored["held_out"], stored["pool"])
    return cfg


def trained_on_report(checkpoint: dict, ckpt_path: str, datamodule: Any, split: str) -> dict[str, Any]:
    """How many of the scored items the run trained on, computed from its run record; warns when any.

    Returns the report's fields: ``trained_on_split`` (any scored item was trained on; ``None`` when the
    checkpoint cannot tell), ``trained_on_items``, ``scored_items`` and ``trained_on_from`` (what the training
    items were read from).
    """
    count, total, basis = trained_on_count(checkpoint, datamodule)
    if count is None:
        log.warning("split=%s: %s: %s, so whether it trained on these items is not known", split, ckpt_path, basis)
        return {"trained_on_split": None, "trained_on_items": None, "scored_items": total, "trained_on_from": basis}
    if count:
        log.warning(
            "split=%s: %s trained on %d of the %d scored items (read from %s): the score measures fit, not generalisation",
            split, ckpt_path, count, total, basis,
        )
    return {"trained_on_split": count > 0, "trained_on_items": count, "scored_items": total, "trained_on_from": basis}


def trained_on_count(checkpoint: dict, datamodule: Any) -> tuple[int | None, int, str]:
    """``(items of the data module's test split the checkpoint's run trained on, items in that split, how that was
    found)``; the count is ``None`` when the checkpoint cannot tell (no run record). Read item by item from the run
    record (`tconvseg.inference.trained_items`), never from the split's name."""
    scored = item_sources(datamodule.dataset("test"))
    trained, basis = trained_items(RunRecord.from_checkpoint(checkpoint), datamodule.whole_split, {split for split, _ in scored})
    return (None if trained is None else sum(item in trained for item in scored)), len(scored), basis


def _check_holdout_matches(datamodule: Any, checkpoint: dict, ckpt_path: str, split: str) -> None:
    """Refuse a holdout that differs from the checkpoint's, and ``split=holdout`` for a run that held nothing out.

    What the run trained on among the scored items is computed afterwards (`trained_on_report`).
    """
    stored = _stored_holdout(checkpoint)
    if datamodule.holdout is None:
        if split == HOLDOUT_SPLIT:
            raise ValueError(
                f"split={HOLDOUT_SPLIT} but {ckpt_path} was trained without data.holdout: nothing was held out of its training, so "
                f"it has no held-out split to score. Expected a split it did not train on (e.g. split=test), or a model trained "
                f"with a drive held out (python scripts/train.py experiment=protocol_select_steps) scored with split={HOLDOUT_SPLIT}"
            )
        return
    current = datamodule.holdout_identity()
    if stored is not None and (stored["held_out"] != current["held_out"] or stored["pool"] != current["pool"]):
        raise ValueError(
            f"{ckpt_path} was trained holding out {stored['held_out']} of the splits {stored['pool']}, but this config holds out "
            f"{current['held_out']} of {current['pool']}: scores would mix seen and unseen groups. Expected the checkpoint's "
            f"holdout (leave data.holdout null to take it from the checkpoint)"
        )


def _task(cfg: DictConfig) -> float | None:
    metrics, _ = evaluate(cfg)
    return metrics.get(f"{cfg.split}/mIoU")


def main() -> None:
    """``tconvseg-eval`` / ``python scripts/eval.py ckpt_path=...``: Hydra overrides on the command line."""
    run_hydra(_task, "eval")


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
