"""The training system end to end: train(cfg) / evaluate(cfg) on synthetic data and a CamVid fixture."""

from __future__ import annotations

import json
import math

import pytest
import torch

from tconvseg.tasks.evaluate import evaluate
from tconvseg.tasks.train import train
from tests.helpers.configs import CHEAP, SYNTH, compose_cfg
from tests.helpers.fakes import make_camvid_tree


def test_fast_dev_run_on_synthetic(tmp_path):
    cfg = compose_cfg("train", tmp_path, [*SYNTH, "debug=fdr"])
    metrics, objects = train(cfg)
    assert objects["trainer"].fast_dev_run
    assert math.isfinite(metrics["train/loss_epoch"]) and 0 <= metrics["val/mIoU"] <= 1


def test_fast_dev_run_on_a_camvid_layout_fixture(tmp_path):
    make_camvid_tree(tmp_path / "data" / "CamVid", size=(45, 61))
    cfg = compose_cfg("train", tmp_path, ["data=camvid", "model=tiny", *CHEAP, "debug=fdr", "data.batch_size=2"])
    metrics, _ = train(cfg)
    assert "val/IoU/Bicyclist" in metrics and math.isfinite(metrics["train/loss_epoch"])


def test_default_model_one_step_on_camvid_fixture(tmp_path):
    """The README's default model (FCN-8s ResNet-18) runs a train + val batch on CamVid-shaped data."""
    make_camvid_tree(tmp_path / "data" / "CamVid", n_train=2, n_val=2, n_test=0, size=(90, 120))
    cfg = compose_cfg("train", tmp_path, ["data=camvid", *CHEAP, "debug=fdr", "data.batch_size=2"])
    metrics, objects = train(cfg)
    assert objects["model"].net.encoder.out_channels == [64, 64, 128, 256, 512]
    assert math.isfinite(metrics["val/loss"])


def test_train_then_evaluate_reproduces_the_logged_best_val_miou(tmp_path):
    cfg = compose_cfg("train", tmp_path, [*SYNTH, "trainer.max_epochs=3"])
    metrics, objects = train(cfg)
    best = objects["best_checkpoint"]
    assert best
    assert metrics["best/val/mIoU"] == pytest.approx(metrics["best/checkpoint_score"], abs=1e-6)

    eval_cfg = compose_cfg("eval", tmp_path, ["data=synthetic", "trainer=cpu", "data.num_workers=0", f"ckpt_path={best}"])
    eval_metrics, eval_objects = evaluate(eval_cfg)
    assert eval_metrics["val/mIoU"] == pytest.approx(metrics["best/checkpoint_score"], abs=1e-6)
    report = json.loads(eval_objects["json_path"].read_text())
    assert eval_objects["json_path"].parent.name == "run"  # next to the training run
    assert report["metrics"]["val/mIoU"] == pytest.approx(eval_metrics["val/mIoU"])
    assert set(k for k in report["metrics"] if "/IoU/" in k) == {f"val/IoU/{n}" for n in ("background", "shape1", "shape2", "shape3")}


def test_evaluate_test_split_and_printed_table(tmp_path, capsys):
    cfg = compose_cfg("train", tmp_path, [*SYNTH, "trainer.max_epochs=1", "validate_best=false"])
    _, objects = train(cfg)
    eval_cfg = compose_cfg("eval", tmp_path, ["data=synthetic", "data.num_workers=0", f"ckpt_path={objects['best_checkpoint']}", "split=test"])
    metrics, _ = evaluate(eval_cfg)
    out = capsys.readouterr().out
    assert "test: per-class IoU" in out and "shape3" in out and "mIoU" in out
    assert 0 <= metrics["test/mIoU"] <= 1


def test_resume_from_last_continues_the_run(tmp_path):
    first = compose_cfg("train", tmp_path, [*SYNTH, "trainer.max_epochs=1", "validate_best=false"], run="first")
    _, objects = train(first)
    steps_per_epoch = objects["trainer"].global_step
    second = compose_cfg("train", tmp_path, [*SYNTH, "trainer.max_epochs=2", "ckpt_path=last", "validate_best=false"], run="second")
    _, resumed = train(second)
    assert resumed["trainer"].current_epoch == 2
    assert resumed["trainer"].global_step == 2 * steps_per_epoch


def test_resume_without_a_checkpoint_says_where_it_looked(tmp_path):
    cfg = compose_cfg("train", tmp_path, [*SYNTH, "ckpt_path=last"])
    with pytest.raises(FileNotFoundError, match="no readable last.ckpt found under .*train/runs"):
        train(cfg)


def test_same_seed_same_metrics(tmp_path):
    results = []
    for run in ("a", "b"):
        cfg = compose_cfg("train", tmp_path, [*SYNTH, "trainer.max_epochs=2", "validate_best=false", "seed=7"], run=run)
        metrics, _ = train(cfg)
        results.append(metrics)
    assert results[0]["val/mIoU"] == results[1]["val/mIoU"]
    assert results[0]["train/loss_epoch"] == results[1]["train/loss_epoch"]


def test_predict_returns_label_maps_at_input_size(tmp_path):
    cfg = compose_cfg("train", tmp_path, [*SYNTH, "debug=fdr"])
    _, objects = train(cfg)
    trainer, model, datamodule = objects["trainer"], objects["model"], objects["datamodule"]
    predictions = trainer.predict(model, datamodule=datamodule)
    images, _ = next(iter(datamodule.predict_dataloader()))
    assert predictions[0].shape == images.shape[:1] + images.shape[2:]
    assert predictions[0].dtype == torch.uint8 and predictions[0].max() < datamodule.num_classes  # label maps: uint8 below 256 classes


def test_checkpoint_from_another_model_is_explained(tmp_path):
    cfg = compose_cfg("train", tmp_path, [*SYNTH, "trainer.max_epochs=1", "validate_best=false"])
    _, objects = train(cfg)
    eval_cfg = compose_cfg(
        "eval", tmp_path,
        ["data=synthetic", "data.num_workers=0", "model=fcn_plain", "model_from_checkpoint=false", f"ckpt_path={objects['best_checkpoint']}"],
    )
    with pytest.raises(ValueError, match=r"trained with another model.*topology=8s.*model_from_checkpoint=true"):
        evaluate(eval_cfg)


def test_missing_data_directory_fails_before_training(tmp_path):
    cfg = compose_cfg("train", tmp_path, ["data=camvid", "model=tiny", *CHEAP])
    with pytest.raises(FileNotFoundError, match="CamVid"):
        train(cfg)


def test_missing_checkpoint_file_is_named(tmp_path):
    eval_cfg = compose_cfg("eval", tmp_path, ["data=synthetic", f"ckpt_path={tmp_path}/nope.ckpt"])
    with pytest.raises(FileNotFoundError, match="nope.ckpt: no such checkpoint file"):
        evaluate(eval_cfg)


def test_corrupt_checkpoint_is_named(tmp_path):
    bad = tmp_path / "bad.ckpt"
    bad.write_bytes(b"not a checkpoint")
    eval_cfg = compose_cfg("eval", tmp_path, ["data=synthetic", f"ckpt_path={bad}"])
    with pytest.raises(ValueError, match="cannot read checkpoint .*bad.ckpt"):
        evaluate(eval_cfg)
