"""The run record: built in one place, stored as plain containers, read back from any format version, compared in one place."""

from __future__ import annotations

import pytest
import torch

from tconvseg.tasks.train import train
from tconvseg.training.checkpoints import CKPT_RUN_IDENTITY, find_last_checkpoint
from tconvseg.training.run_record import FORMAT_VERSION, RunRecord, build_run_record, describe
from tests.helpers.configs import CHEAP, compose_cfg

#: A record as checkpoints stored it before it had a format version (a plain dict, 2026-12-06).
OLD = {"experiment": "camvid_cpu", "model": {"_target_": "tconvseg.nn.FCN", "encoder": {"name": "resnet18"}, "topology": "8s"},
       "data": {"dataset": "tconvseg.data.CamVidDataset", "info": "camvid", "num_classes": 11}}


def test_an_old_record_reads_as_version_0_and_compares_with_a_new_one():
    old = RunRecord.from_dict(OLD)
    assert old.format_version == 0 and old.train_splits is None and old.holdout is None
    assert old.dataset_name == "camvid" and old.num_classes == 11 and old.stored_train_splits is None
    new = RunRecord.from_dict({**OLD, "train_splits": ["train"], "format_version": FORMAT_VERSION})
    assert new.differences(old) == [] and old.differences(new) == []  # stored-only fields are not compared
    assert RunRecord.from_dict(None) is None and RunRecord.from_dict({}) is None


def test_differences_name_the_fields_and_experiment_counts_only_when_both_know_it():
    record = RunRecord.from_dict(OLD)
    other = RunRecord.from_dict({**OLD, "experiment": "camvid_cpu_60min", "data": {**OLD["data"], "num_classes": 12}})
    assert record.differences(other) == ["experiment", "data"]
    assert record.differences(RunRecord.from_dict({**OLD, "experiment": None})) == []
    assert record.differences(None) == []  # a checkpoint without a record matches any run
    # An old name reads as its new one (EXPERIMENT_RENAMES): records compare across the 2026-12-07 rename.
    assert "experiment=recipe_cpu_30min, model=tconvseg.nn.FCN (encoder=resnet18, topology=8s)" in record.describe()
    assert describe(None) == "unknown (no run identity stored)"


def test_the_stored_form_is_plain_and_round_trips():
    record = RunRecord.from_dict({**OLD, "train_splits": ["train", "val"], "splits": {"val_items": ["a"]}})
    stored = record.to_dict()
    assert stored["format_version"] == 0 and stored["train_splits"] == ["train", "val"]  # the version it was read with
    assert RunRecord.from_dict(stored) == record
    torch.save(stored, "/dev/null")  # plain containers: what torch.load(weights_only=True) reads back
    with pytest.raises(AttributeError):
        record.experiment = "x"  # frozen


def test_a_run_stores_the_record_it_built_and_resumes_only_the_same_run(tmp_path):
    cfg = compose_cfg("train", tmp_path, ["data=synthetic", "model=tiny", *CHEAP, "trainer.max_epochs=1", "validate_best=false"])
    _, objects = train(cfg)
    last = objects["cfg"].paths.output_dir + "/checkpoints/last.ckpt"
    stored = torch.load(last, weights_only=True)[CKPT_RUN_IDENTITY]
    record = build_run_record(objects["cfg"], objects["datamodule"])
    assert RunRecord.from_dict(stored) == record and stored["format_version"] == FORMAT_VERSION
    assert stored["train_splits"] == ["train"] and "train_splits" not in stored["data"]
    assert find_last_checkpoint(objects["cfg"].paths.log_dir, "train", record) == last
    other = RunRecord.from_dict({**stored, "model": {**stored["model"], "decoder_channels": 999}})
    with pytest.raises(ValueError, match=r"ckpt_path=last: the newest run .* is another experiment"):
        find_last_checkpoint(objects["cfg"].paths.log_dir, "train", other)
