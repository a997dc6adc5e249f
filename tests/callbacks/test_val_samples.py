"""The val-samples callback: PNG grids in the run folder every N epochs, and the same image in TensorBoard."""

from __future__ import annotations

import pytest
from PIL import Image
from tensorboard.backend.event_processing.event_accumulator import IMAGES, EventAccumulator

from tconvseg.callbacks import ValSamples
from tconvseg.tasks.train import train
from tests.helpers.configs import CHEAP, compose_cfg


def _train(tmp_path, *extra):
    overrides = ["data=synthetic", "model=tiny", *CHEAP, "callbacks=with_samples", "validate_best=false", *extra]
    _, objects = train(compose_cfg("train", tmp_path, overrides))
    return objects


def test_writes_a_grid_every_n_epochs_and_logs_it_to_tensorboard(tmp_path):
    every_second_epoch = ["callbacks.val_samples.every_n_epochs=2", "callbacks.val_samples.num_samples=3"]
    objects = _train(tmp_path, "logger=tensorboard", "trainer.max_epochs=2", *every_second_epoch)
    run_dir = tmp_path / "logs" / "train" / "runs" / "run"
    assert sorted(p.name for p in (run_dir / "val_samples").iterdir()) == ["epoch001.png"]
    with Image.open(run_dir / "val_samples" / "epoch001.png") as grid:
        h, w = objects["datamodule"].dataset("val")[0][1].shape
        assert grid.format == "PNG" and 3 * w < grid.width < 4 * w and 3 * h < grid.height < 4 * h  # 3 columns, 3 rows
    events = EventAccumulator(str(run_dir / "tensorboard"), size_guidance={IMAGES: 0}).Reload()
    (image,) = events.Images("val/samples")
    assert (image.width, image.height) == grid.size and image.step == objects["trainer"].global_step


@pytest.mark.parametrize("rank_zero", [True, False])
def test_only_rank_zero_writes(tmp_path, monkeypatch, rank_zero):
    monkeypatch.setattr("lightning.pytorch.trainer.trainer.Trainer.is_global_zero", property(lambda self: rank_zero))
    _train(tmp_path, "trainer.max_epochs=1")
    written = tmp_path / "logs" / "train" / "runs" / "run" / "val_samples" / "epoch000.png"
    assert written.exists() == rank_zero  # the same run writes its grid on rank zero: the callback did run


def test_bad_settings_are_named():
    with pytest.raises(ValueError, match=r"ValSamples\(num_samples=0, every_n_epochs=1\) is invalid"):
        ValSamples(num_samples=0)
