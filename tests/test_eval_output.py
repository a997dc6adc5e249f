"""Evaluation output is never lost or overwritten: table first, one JSON per checkpoint, atomic."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tconvseg.tasks.evaluate import evaluate
from tconvseg.tasks.train import train
from tests.helpers.configs import CHEAP, compose_cfg


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("run")
    cfg = compose_cfg("train", tmp, ["data=synthetic", "model=tiny", *CHEAP, "trainer.max_epochs=2", "validate_best=false"])
    _, objects = train(cfg)
    folder = Path(objects["best_checkpoint"]).parent
    return tmp, Path(objects["best_checkpoint"]), folder / "last.ckpt"


def _evaluate(tmp: Path, ckpt: Path, *extra: str):
    return evaluate(compose_cfg("eval", tmp, ["data=synthetic", "data.num_workers=0", f"ckpt_path={ckpt}", *extra]))


def test_best_and_last_each_get_their_own_report(run):
    tmp, best, last = run
    _, first = _evaluate(tmp, best)
    _, second = _evaluate(tmp, last)
    assert first["json_path"].name == f"eval_val_{best.stem}.json"
    assert second["json_path"].name == "eval_val_last.json"
    assert json.loads(first["json_path"].read_text())["checkpoint"] == str(best.resolve())
    assert json.loads(second["json_path"].read_text())["checkpoint"] == str(last.resolve())
    assert not list(first["json_path"].parent.glob(".*.tmp"))


def test_an_unwritable_report_path_fails_after_the_table(run, tmp_path, capsys):
    tmp, best, _ = run
    blocker = tmp_path / "not_a_folder"
    blocker.write_text("a file where a folder should be")
    with pytest.raises(OSError, match=r"evaluation finished \(table above\) but its report could not be written to .*not_a_folder.*output_json="):
        _evaluate(tmp, best, f"output_json={blocker}/report.json")
    out = capsys.readouterr().out
    assert "val: per-class IoU" in out and "mIoU" in out


def test_a_failed_write_keeps_the_previous_report(run, tmp_path, monkeypatch):
    tmp, best, _ = run
    target = tmp_path / "report.json"
    target.write_text('{"previous": true}')

    def broken_replace(src, dst):
        raise OSError("disk full")

    monkeypatch.setattr("os.replace", broken_replace)
    with pytest.raises(OSError, match="disk full"):
        _evaluate(tmp, best, f"output_json={target}")
    assert json.loads(target.read_text()) == {"previous": True}
    assert [p.name for p in tmp_path.iterdir()] == ["report.json"]
