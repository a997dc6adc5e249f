"""``export quantize=int8``: the int8 file keeps dynamic sizes, its accuracy cost is measured on a split the model did not
train on, a loss past the threshold is refused (and written only when forced), and bad options are named."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import onnx
import pytest
import torch

import tconvseg.tasks.export_int8 as export_int8
from tconvseg.inference.int8 import onnx_session, spread_indices
from tconvseg.tasks.evaluate import evaluate
from tconvseg.tasks.export import export
from tconvseg.tasks.export_int8 import QuantizationError
from tconvseg.tasks.train import train
from tconvseg.training.checkpoints import resume_checkpoint_path
from tests.helpers.configs import CHEAP, compose_cfg
from tests.helpers.inference import train_tiny

INT8 = ["data=synthetic", "quantize=int8", "calibration_images=4"]


@pytest.fixture(scope="module")
def ckpt(tmp_path_factory):
    return train_tiny(tmp_path_factory.mktemp("train"))


def _export(tmp: Path, ckpt: Path, *extra: str):
    return export(compose_cfg("export", tmp, [f"ckpt_path={ckpt}", "format=onnx", f"output={tmp / 'model' / 'net.onnx'}", *INT8, *extra]))


def test_int8_file_is_written_with_both_scores_and_runs_at_any_size(ckpt, tmp_path):
    report, objects = _export(tmp_path, ckpt, "int8_max_miou_drop=100", "int8_format=qdq")
    entry = report["int8"]
    assert json.loads((tmp_path / "model" / "export_report.json").read_text())["int8"] == entry
    int8_path = tmp_path / "model" / "net.int8.onnx"
    assert entry["written"] == str(int8_path.resolve()) and int8_path.is_file()
    assert entry["calibration_split"] == "train" and entry["calibration_images"] == 4
    assert entry["accuracy_split"] == "val" and entry["trained_on_scored_items"] == 0 and entry["scored_items"] > 0
    assert entry["mIoU_drop"] == pytest.approx(entry["fp32_mIoU"] - entry["int8_mIoU"])
    # really quantised: int8 weights and QDQ nodes, dynamic batch, height and width kept
    graph = onnx.load(str(int8_path)).graph
    assert {"QuantizeLinear", "DequantizeLinear"} <= {node.op_type for node in graph.node}
    assert any(init.data_type == onnx.TensorProto.INT8 for init in graph.initializer)
    assert [d.dim_param != "" for d in graph.input[0].type.tensor_type.shape.dim] == [True, False, True, True]
    (logits,) = onnx_session(int8_path).run(None, {"image": torch.randn(2, 3, 45, 61).numpy()})
    assert logits.shape == (2, 4, 45, 61) and np.isfinite(logits).all()


def test_the_default_qoperator_format_writes_int8_operators(ckpt, tmp_path):
    report, _ = _export(tmp_path, ckpt, "int8_max_miou_drop=100", "accuracy_images=2")
    ops = {node.op_type for node in onnx.load(report["int8"]["written"]).graph.node}
    assert "QLinearConv" in ops and report["int8"]["int8_format"] == "qoperator" and report["int8"]["scored_items"] == 2


def test_the_fp32_score_is_evaluations_score_on_the_same_split(ckpt, tmp_path):
    report, _ = _export(tmp_path, ckpt, "int8_max_miou_drop=100")
    metrics, _ = evaluate(compose_cfg("eval", tmp_path, ["data=synthetic", f"ckpt_path={ckpt}", "split=val", "samples=0", *CHEAP[:1]]))
    assert report["int8"]["fp32_mIoU"] == pytest.approx(100 * metrics["val/mIoU"], abs=1e-3)


def _fake_scores(monkeypatch, fp32: float, int8: float) -> None:
    scores = iter([{"mIoU": fp32}, {"mIoU": int8}])
    monkeypatch.setattr(export_int8, "score_onnx", lambda *args, **kwargs: next(scores))


def test_a_loss_past_the_threshold_is_refused_after_writing_the_report(ckpt, tmp_path, monkeypatch):
    _fake_scores(monkeypatch, 0.50, 0.47)  # 3 points lost
    with pytest.raises(QuantizationError, match=r"loses 3.00 mIoU points on val \(50.00 -> 47.00 %\), more than int8_max_miou_drop=1.0"):
        _export(tmp_path, ckpt)
    assert not (tmp_path / "model" / "net.int8.onnx").exists()
    assert not list((tmp_path / "model").glob(".*pending"))
    entry = json.loads((tmp_path / "model" / "export_report.json").read_text())["int8"]
    assert entry["written"] is None and entry["mIoU_drop"] == pytest.approx(3.0) and (tmp_path / "model" / "net.onnx").is_file()


def test_force_writes_it_anyway_and_says_so(ckpt, tmp_path, monkeypatch):
    _fake_scores(monkeypatch, 0.50, 0.47)
    report, _ = _export(tmp_path, ckpt, "force_int8=true")
    assert report["int8"]["forced"] is True and (tmp_path / "model" / "net.int8.onnx").is_file()


def test_a_loss_within_the_threshold_is_written_unforced(ckpt, tmp_path, monkeypatch):
    _fake_scores(monkeypatch, 0.50, 0.495)
    report, _ = _export(tmp_path, ckpt)
    assert report["int8"]["forced"] is False and report["int8"]["written"]


def test_calibrating_on_a_split_it_did_not_train_on_is_refused(ckpt, tmp_path):
    with pytest.raises(ValueError, match=r"calibration_split=val: .* trained on none of its \d+ items .*expected a split it trained on"):
        _export(tmp_path, ckpt, "calibration_split=val", "accuracy_split=train")


def test_scoring_on_a_split_it_trained_on_is_refused(tmp_path):
    cfg = compose_cfg("train", tmp_path / "t", ["data=synthetic", "model=tiny", *CHEAP, "trainer.max_epochs=1", "validate_best=false",
                                                 "data.splits.train=[train,val]"])
    _, objects = train(cfg)
    both = Path(resume_checkpoint_path(objects["trainer"].checkpoint_callbacks))
    with pytest.raises(ValueError, match=r"accuracy_split=val: .* trained on \d+ of its \d+ items .*Expected a split it did not train on"):
        _export(tmp_path, both)
    with pytest.raises(ValueError, match=r"calibration_split and accuracy_split are both 'train'"):
        _export(tmp_path, both, "accuracy_split=train")


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (["quantize=int4"], r"quantize='int4' is invalid; expected null \(fp32 only\) or int8"),
        (["format=torchscript"], r"quantize=int8 applies to format=onnx .* not format=torchscript"),
        (["calibration_images=0"], r"calibration_images=0 is invalid; expected a positive number"),
        (["calibration_method=mse"], r"calibration_method='mse' is invalid; expected one of minmax, percentile, entropy"),
        (["int8_max_miou_drop=-1"], r"int8_max_miou_drop=-1 is invalid; expected mIoU points >= 0"),
        (["accuracy_images=0"], r"accuracy_images=0 is invalid"),
        (["int8_format=fp16"], r"int8_format='fp16' is invalid; expected one of qdq, qoperator"),
    ],
)
def test_bad_int8_options_are_named_before_anything_is_read(tmp_path, extra, message):
    with pytest.raises(ValueError, match=message):
        _export(tmp_path, tmp_path / "missing.ckpt", *extra)


@pytest.mark.parametrize(("length", "count", "expected"), [(10, 3, [0, 4, 9]), (3, 8, [0, 1, 2]), (5, 1, [0])])
def test_calibration_images_are_spread_over_the_split(length, count, expected):
    assert spread_indices(length, count) == expected
