"""MLflow and W&B loggers: a short training with both (and CSV), read back with MLflow's own client and from
W&B's offline run file; the config, tags, run folder, checkpoint paths and val-sample pictures reach both."""

from __future__ import annotations

import csv

import pytest
import wandb
from lightning.pytorch.loggers import CSVLogger
from mlflow import tracking as mlflow_tracking

from tconvseg.callbacks.trackers import trackers
from tconvseg.tasks.train import train
from tests.helpers.configs import CHEAP, compose_cfg
from tests.helpers.wandb_offline import read_run


def _csv_series(run_dir, key):
    with open(run_dir / "csv" / "metrics.csv") as f:
        return [float(row[key]) for row in csv.DictReader(f) if row.get(key)]


@pytest.fixture()
def tracked_run(tmp_path, monkeypatch):
    for var in ("WANDB_CACHE_DIR", "WANDB_CONFIG_DIR", "WANDB_DATA_DIR", "WANDB_ARTIFACT_DIR"):
        monkeypatch.setenv(var, str(tmp_path / "wandb-home"))
    monkeypatch.setenv("WANDB_SILENT", "true")
    overrides = [
        "data=synthetic", "model=tiny", *CHEAP, "logger=[csv,mlflow,wandb]", "callbacks=with_samples",
        "trainer.max_epochs=2", "tags=[unit,trackers]",
    ]
    metrics, objects = train(compose_cfg("train", tmp_path, overrides))
    wandb.finish()  # the run file is complete once the run has finished (the CLI finishes it at exit)
    return tmp_path, tmp_path / "logs" / "train" / "runs" / "run", objects


def test_mlflow_and_wandb_receive_metrics_config_tags_checkpoints_and_pictures(tracked_run):
    tmp_path, run_dir, objects = tracked_run
    val_miou = _csv_series(run_dir, "val/mIoU")
    assert len(val_miou) == 3  # two epochs, then the best checkpoint validated again
    last = str((run_dir / "checkpoints" / "last.ckpt").resolve())

    # MLflow: the default SQLite store under logs/, read with MLflow's client
    client = mlflow_tracking.MlflowClient(tracking_uri=f"sqlite:///{tmp_path}/logs/mlflow.db")
    experiment = client.get_experiment_by_name("tconvseg-train")
    (run,) = client.search_runs([experiment.experiment_id])
    history = client.get_metric_history(run.info.run_id, "val/mIoU")
    assert [m.value for m in history] == pytest.approx(val_miou)
    assert run.data.params["seed"] == "42" and run.data.params["model/optimizer/lr"] == str(objects["cfg"].model.optimizer.lr)
    tags = run.data.tags
    assert tags["tag.unit"] == tags["tag.trackers"] == "true" and tags["run_dir"] == str(run_dir)
    assert tags["checkpoint.last"] == last and tags["checkpoint.best"].startswith(str(run_dir.resolve() / "checkpoints"))
    pictures = [a.path for a in client.list_artifacts(run.info.run_id, "val_samples")]
    assert pictures == ["val_samples/epoch000.png", "val_samples/epoch001.png", "val_samples/epoch002.png"]

    # W&B: offline by default, the run file in the run folder
    (offline,) = (run_dir / "wandb").glob("offline-run-*")
    logged = read_run(offline)
    assert [h["val/mIoU"] for h in logged["history"] if "val/mIoU" in h] == pytest.approx(val_miou)
    assert logged["config"]["seed"] == 42 and logged["config"]["model"]["optimizer"]["lr"] == objects["cfg"].model.optimizer.lr
    assert {"unit", "trackers"} <= set(logged["tags"])
    assert logged["summary"]["checkpoint.last"] == last and logged["summary"]["run_dir"] == str(run_dir)
    images = [h["val/samples/filenames"] for h in logged["history"] if "val/samples/filenames" in h]  # nested keys, flattened
    assert len(images) == 3 and all((offline / "files" / names[0]).is_file() for names in images)


def test_only_trackers_get_the_extra_records():
    assert trackers([CSVLogger("unused")]) == []
