"""A holdout run end to end: the split reaches the log and the checkpoint, eval scores exactly the held-out drive."""

import json
import logging

import pytest
import torch

from tconvseg.data import CamVidDataset
from tconvseg.inference.trained_items import ASSUMED_TRAIN, trained_items
from tconvseg.tasks.evaluate import evaluate, holdout_from_checkpoint
from tconvseg.tasks.train import train
from tconvseg.training.checkpoints import CKPT_RUN_IDENTITY
from tconvseg.training.run_record import RunRecord
from tests.helpers.configs import CHEAP, compose_cfg
from tests.helpers.fakes import make_camvid_tree

HOLDOUT = ["data.holdout=sequence", "data.holdout_groups=[0006R0]"]
HELD_OUT = ["0006R0_train_0001", "0006R0_train_0004", "0006R0_val_0001"]
ONE_EPOCH = ["data=camvid", "model=tiny", *CHEAP, "trainer.max_epochs=1", "data.batch_size=2", "validate_best=false"]


@pytest.fixture
def trained(tmp_path, caplog):
    make_camvid_tree(tmp_path / "data" / "CamVid", n_train=6, n_val=2, n_test=0, size=(24, 32), groups=("0001TP", "0006R0", "0016E5"))
    cfg = compose_cfg("train", tmp_path, [*ONE_EPOCH, *HOLDOUT])
    caplog.set_level(logging.INFO, logger="tconvseg.tasks.train")
    _, objects = train(cfg)
    objects["last"] = objects["cfg"].paths.output_dir + "/checkpoints/last.ckpt"  # under a holdout no best checkpoint is written
    return tmp_path, objects, caplog


def test_the_split_is_logged_and_stored_in_every_checkpoint(trained):
    _, objects, caplog = trained
    log_text = "\n".join(r.getMessage() for r in caplog.get_records("setup"))  # the fixture trained
    assert "held out ['0006R0'] -> validation 0006R0 (3); training 0001TP (3), 0016E5 (2)" in log_text
    assert "Held-out items: 0006R0_train_0001 0006R0_train_0004 0006R0_val_0001" in log_text
    identity = torch.load(objects["last"], weights_only=True)[CKPT_RUN_IDENTITY]
    assert identity["data"]["holdout"] == {"mode": "sequence", "pool": ["train", "val"], "held_out": ["0006R0"]}
    assert identity["splits"]["val_items"] == HELD_OUT


def test_eval_takes_the_holdout_from_the_checkpoint(trained):
    tmp_path, objects, _ = trained
    out = tmp_path / "holdout.json"
    ckpt = objects["last"]
    eval_cfg = compose_cfg("eval", tmp_path, ["data=camvid", "trainer=cpu", "split=holdout", "samples=0", f"ckpt_path={ckpt}", f"output_json={out}"])
    metrics, eval_objects = evaluate(eval_cfg)
    assert eval_objects["datamodule"].dataset("test").names() == HELD_OUT
    report = json.loads(out.read_text())
    assert report["split"] == "holdout" and report["holdout"]["held_out"] == ["0006R0"]
    assert report["metrics"]["holdout/mIoU"] == pytest.approx(metrics["holdout/mIoU"])


def test_eval_refuses_another_holdout_than_the_checkpoints(trained):
    tmp_path, objects, _ = trained
    eval_cfg = compose_cfg(
        "eval", tmp_path,
        ["data=camvid", "split=holdout", "data.holdout=sequence", "data.holdout_groups=[0001TP]", f"ckpt_path={objects['last']}"],
    )
    with pytest.raises(ValueError, match=r"trained holding out \['0006R0'\].*this config holds out \['0001TP'\]"):
        evaluate(eval_cfg)


def test_resume_with_another_holdout_is_refused(trained):
    tmp_path, objects, _ = trained
    other = ["data.holdout=sequence", "data.holdout_groups=[0016E5]", f"ckpt_path={objects['last']}"]
    cfg = compose_cfg("train", tmp_path, [*ONE_EPOCH, *other], run="again")
    with pytest.raises(ValueError, match="belongs to another run.*data differ"):
        train(cfg)


def test_split_holdout_without_a_holdout_is_explained(tmp_path):
    make_camvid_tree(tmp_path / "data" / "CamVid", n_train=4, n_val=2, n_test=0, size=(24, 32))
    _, objects = train(compose_cfg("train", tmp_path, ONE_EPOCH))
    eval_cfg = compose_cfg("eval", tmp_path, ["data=camvid", "split=holdout", f"ckpt_path={objects['best_checkpoint']}"])
    with pytest.raises(ValueError, match="split=holdout but .* trained without data.holdout") as err:
        evaluate(eval_cfg)
    assert "split=test" in str(err.value) and "experiment=protocol_select_steps" in str(err.value)
    assert "data.holdout=sequence" not in str(err.value)  # holding out at eval time what it trained on is no held-out score


def test_a_split_outside_the_pool_is_scored_as_it_is(tmp_path):
    """Only ``split=holdout`` and the pooled splits take the checkpoint's holdout: another split (CamVid's val
    when only train was pooled, or another dataset's images) is scored without reading the pool."""
    checkpoint = {CKPT_RUN_IDENTITY: {"data": {"holdout": {"mode": "sequence", "pool": ["train"], "held_out": ["0006R0"]}}}}
    for split, takes_it in (("val", False), ("test", False), ("holdout", True), ("train", True)):
        cfg = compose_cfg("eval", tmp_path, ["data=camvid", f"split={split}"])
        assert (holdout_from_checkpoint(cfg, checkpoint, "run.ckpt").data.holdout == "sequence") is takes_it, split


def _eval_report(tmp_path, ckpt, split, *extra):
    out = tmp_path / f"eval_{split}_{len(extra)}.json"
    evaluate(compose_cfg("eval", tmp_path, ["data=camvid", "trainer=cpu", f"split={split}", "samples=0", f"ckpt_path={ckpt}",
                                            f"output_json={out}", *extra]))
    return json.loads(out.read_text())


def test_a_holdout_run_writes_no_best_by_held_out_checkpoint_unless_asked(trained, tmp_path):
    _, objects, caplog = trained
    assert objects["best_checkpoint"] == "" and [p.name for p in (tmp_path / "logs").rglob("*.ckpt")] == ["last.ckpt"]
    setup_log = "\n".join(r.getMessage() for r in caplog.get_records("setup"))  # the fixture trained
    assert "no best-by-held-out checkpoint (ModelCheckpoint(monitor=val/mIoU) left out" in setup_log
    cfg = compose_cfg("train", tmp_path, [*ONE_EPOCH, *HOLDOUT, "select_on_holdout=true"], run="asked")
    _, asked = train(cfg)
    assert asked["best_checkpoint"].endswith(".ckpt") and "miou" in asked["best_checkpoint"]


def test_early_stopping_on_the_held_out_drive_is_refused(tmp_path):
    make_camvid_tree(tmp_path / "data" / "CamVid", n_train=6, n_val=2, n_test=0, size=(24, 32), groups=("0001TP", "0006R0", "0016E5"))
    cfg = compose_cfg("train", tmp_path, [*ONE_EPOCH, *HOLDOUT, "callbacks=with_early_stopping"])
    with pytest.raises(ValueError, match=r"early stopping on val/mIoU with data.holdout holding out \['0006R0'\]"):
        train(cfg)


def test_trained_on_split_is_computed_from_the_run_record(trained, caplog):
    tmp_path, objects, _ = trained
    ckpt = objects["last"]
    held = _eval_report(tmp_path, ckpt, "holdout")
    assert (held["trained_on_split"], held["trained_on_items"], held["scored_items"]) == (False, 0, 3)
    assert held["trained_on_from"].startswith("the stored split manifest")
    kept = _eval_report(tmp_path, ckpt, "train")  # a pooled split: its kept side, every item trained on
    assert (kept["trained_on_split"], kept["trained_on_items"], kept["scored_items"]) == (True, 5, 5)
    caplog.clear()
    val = _eval_report(tmp_path, ckpt, "val")  # 0001TP_val_0000 trained on, 0006R0_val_0001 held out
    assert (val["trained_on_split"], val["trained_on_items"], val["scored_items"]) == (True, 1, 2)
    assert "trained on 1 of the 2 scored items" in caplog.text


def test_a_holdout_set_at_eval_time_on_a_run_that_trained_on_it_is_called_trained_on(tmp_path, caplog):
    make_camvid_tree(tmp_path / "data" / "CamVid", n_train=6, n_val=2, n_test=0, size=(24, 32), groups=("0001TP", "0006R0", "0016E5"))
    _, objects = train(compose_cfg("train", tmp_path, ONE_EPOCH))  # trained on all of train, no holdout
    caplog.set_level(logging.WARNING, logger="tconvseg.tasks.evaluate")
    report = _eval_report(tmp_path, objects["best_checkpoint"], "holdout", *HOLDOUT)  # held-out items: two of train, one of val
    assert (report["trained_on_split"], report["trained_on_items"], report["scored_items"]) == (True, 2, 3)
    assert "trained on 2 of the 3 scored items" in caplog.text


def test_a_checkpoint_that_predates_the_train_split_list_says_what_was_assumed(tmp_path):
    root = tmp_path / "CamVid"
    make_camvid_tree(root, n_train=3, n_val=2, n_test=0, size=(12, 16))

    def whole_split(split):
        return CamVidDataset(root, split, cache=False)

    items, basis = trained_items(RunRecord.from_dict({"data": {"info": "camvid"}}), whole_split)
    assert basis == ASSUMED_TRAIN and items == {("train", n) for n in whole_split("train").names()}
    items, basis = trained_items(RunRecord.from_dict({"data": {}, "train_splits": ["val"]}), whole_split)
    assert items == {("val", n) for n in whole_split("val").names()} and "stored training splits ['val']" in basis
    assert trained_items(None, whole_split) == (None, "the checkpoint stores no run record")


def test_only_the_splits_the_scored_items_come_from_are_read(tmp_path):
    root = tmp_path / "CamVid"
    make_camvid_tree(root, n_train=3, n_val=2, n_test=0, size=(12, 16))
    built = []

    def whole_split(split):
        built.append(split)
        return CamVidDataset(root, split, cache=False)

    items, _ = trained_items(RunRecord.from_dict({"data": {}, "train_splits": ["train", "val"]}), whole_split, only={"val"})
    assert built == ["val"] and items == {("val", n) for n in CamVidDataset(root, "val").names()}
