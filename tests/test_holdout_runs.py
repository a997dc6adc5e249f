"""A holdout run end to end: the split reaches the log and the checkpoint, eval scores exactly the held-out drive."""

import json
import logging

import pytest
import torch

from tconvseg.checkpoints import CKPT_RUN_IDENTITY
from tconvseg.evaluate import evaluate, holdout_from_checkpoint
from tconvseg.train import train
from tests.helpers.configs import CHEAP, compose_cfg
from tests.helpers.fakes import make_camvid_tree

HOLDOUT = ["data.holdout=sequence", "data.holdout_groups=[0006R0]"]
HELD_OUT = ["0006R0_train_0001", "0006R0_train_0004", "0006R0_val_0001"]
ONE_EPOCH = ["data=camvid", "model=tiny", *CHEAP, "trainer.max_epochs=1", "data.batch_size=2", "validate_best=false"]


@pytest.fixture
def trained(tmp_path, caplog):
    make_camvid_tree(tmp_path / "data" / "CamVid", n_train=6, n_val=2, n_test=0, size=(24, 32), groups=("0001TP", "0006R0", "0016E5"))
    cfg = compose_cfg("train", tmp_path, [*ONE_EPOCH, *HOLDOUT])
    caplog.set_level(logging.INFO, logger="tconvseg.train")
    _, objects = train(cfg)
    return tmp_path, objects, caplog


def test_the_split_is_logged_and_stored_in_every_checkpoint(trained):
    _, objects, caplog = trained
    log_text = "\n".join(r.getMessage() for r in caplog.get_records("setup"))  # the fixture trained
    assert "held out ['0006R0'] -> validation 0006R0 (3); training 0001TP (3), 0016E5 (2)" in log_text
    assert "Held-out items: 0006R0_train_0001 0006R0_train_0004 0006R0_val_0001" in log_text
    identity = torch.load(objects["best_checkpoint"], weights_only=True)[CKPT_RUN_IDENTITY]
    assert identity["data"]["holdout"] == {"mode": "sequence", "pool": ["train", "val"], "held_out": ["0006R0"]}
    assert identity["splits"]["val_items"] == HELD_OUT


def test_eval_takes_the_holdout_from_the_checkpoint(trained):
    tmp_path, objects, _ = trained
    out = tmp_path / "holdout.json"
    ckpt = objects["best_checkpoint"]
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
        ["data=camvid", "split=holdout", "data.holdout=sequence", "data.holdout_groups=[0001TP]", f"ckpt_path={objects['best_checkpoint']}"],
    )
    with pytest.raises(ValueError, match=r"trained holding out \['0006R0'\].*this config holds out \['0001TP'\]"):
        evaluate(eval_cfg)


def test_resume_with_another_holdout_is_refused(trained):
    tmp_path, objects, _ = trained
    other = ["data.holdout=sequence", "data.holdout_groups=[0016E5]", f"ckpt_path={objects['best_checkpoint']}"]
    cfg = compose_cfg("train", tmp_path, [*ONE_EPOCH, *other], run="again")
    with pytest.raises(ValueError, match="belongs to another run.*data differ"):
        train(cfg)


def test_split_holdout_without_a_holdout_is_explained(tmp_path):
    make_camvid_tree(tmp_path / "data" / "CamVid", n_train=4, n_val=2, n_test=0, size=(24, 32))
    _, objects = train(compose_cfg("train", tmp_path, ONE_EPOCH))
    eval_cfg = compose_cfg("eval", tmp_path, ["data=camvid", "split=holdout", f"ckpt_path={objects['best_checkpoint']}"])
    with pytest.raises(ValueError, match="split=holdout but .* trained without data.holdout"):
        evaluate(eval_cfg)


def test_a_split_outside_the_pool_is_scored_as_it_is(tmp_path):
    """Only ``split=holdout`` and the pooled splits take the checkpoint's holdout: another split (CamVid's val
    when only train was pooled, or another dataset's images) is scored without reading the pool."""
    checkpoint = {CKPT_RUN_IDENTITY: {"data": {"holdout": {"mode": "sequence", "pool": ["train"], "held_out": ["0006R0"]}}}}
    for split, takes_it in (("val", False), ("test", False), ("holdout", True), ("train", True)):
        cfg = compose_cfg("eval", tmp_path, ["data=camvid", f"split={split}"])
        assert (holdout_from_checkpoint(cfg, checkpoint, "run.ckpt").data.holdout == "sequence") is takes_it, split
