"""tconvseg-export: ONNX and TorchScript files that take any H and W, checked against PyTorch at odd sizes."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import onnx
import onnxruntime
import pytest
import torch

from tconvseg.tasks.export import ParityError, export
from tests.helpers.configs import compose_cfg
from tests.helpers.inference import train_tiny
from tests.helpers.scripts import run_script

ODD_SIZES = "sizes=[[97,131],[64,64],[45,61],[13,200]]"


@pytest.fixture(scope="module")
def ckpt(tmp_path_factory):
    return train_tiny(tmp_path_factory.mktemp("train"))


def _export(tmp: Path, ckpt: Path, fmt: str, *extra: str):
    return export(compose_cfg("export", tmp, [f"ckpt_path={ckpt}", f"format={fmt}", f"output={tmp / 'model' / f'net.{fmt}'}", *extra]))


@pytest.mark.parametrize("fmt", ["onnx", "torchscript"])
def test_exported_model_matches_pytorch_at_odd_sizes(ckpt, tmp_path, fmt):
    report, objects = _export(tmp_path, ckpt, fmt, ODD_SIZES)
    assert json.loads((tmp_path / "model" / "export_report.json").read_text()) == report
    assert [row["size"] for row in report["parity"]] == [[97, 131], [64, 64], [45, 61], [13, 200]]
    for row in report["parity"]:
        assert row["output_shape"] == [2, 4, *row["size"]]
        assert row["max_abs_diff"] < 1e-4 and row["same_argmax"] > 0.999


def test_onnx_graph_has_symbolic_batch_height_and_width_and_runs_at_a_new_size(ckpt, tmp_path):
    _, objects = _export(tmp_path, ckpt, "onnx")
    model = onnx.load(str(objects["output"]))
    dims = model.graph.input[0].type.tensor_type.shape.dim
    assert [d.dim_param != "" for d in dims] == [True, False, True, True] and dims[1].dim_value == 3
    session = onnxruntime.InferenceSession(str(objects["output"]), providers=["CPUExecutionProvider"])
    x = torch.randn(1, 3, 71, 29)
    (logits,) = session.run(None, {"image": x.numpy()})
    with torch.no_grad():
        np.testing.assert_allclose(logits, objects["net"](x).numpy(), atol=1e-4, rtol=0)


def test_torchscript_file_runs_at_a_new_size(ckpt, tmp_path):
    _, objects = _export(tmp_path, ckpt, "torchscript")
    loaded = torch.jit.load(str(objects["output"]))
    x = torch.randn(3, 3, 59, 83)
    with torch.no_grad():
        torch.testing.assert_close(loaded(x), objects["net"](x))


def test_a_difference_above_the_tolerance_fails_after_writing_the_report(ckpt, tmp_path):
    with pytest.raises(ParityError, match=r"differs from PyTorch by up to .* \(> tolerance=-1.0\)"):
        _export(tmp_path, ckpt, "torchscript", "tolerance=-1.0")
    assert (tmp_path / "model" / "export_report.json").is_file()


def test_bad_format_and_sizes_are_named(ckpt, tmp_path):
    with pytest.raises(ValueError, match=r"format='tflite' is not supported; expected one of onnx, torchscript"):
        _export(tmp_path, ckpt, "tflite")
    with pytest.raises(ValueError, match=r"sizes \[\(0, 5\)\] are below this model's minimum input 1x1"):
        _export(tmp_path, ckpt, "onnx", "sizes=[[0,5]]")


def test_export_script(ckpt, tmp_path):
    run_script("export.py", [f"ckpt_path={ckpt}", "format=onnx", f"output={tmp_path / 'net.onnx'}"], tmp_path)
    report = json.loads((tmp_path / "export_report.json").read_text())
    assert report["format"] == "onnx" and len(report["parity"]) == 3


@pytest.mark.parametrize("padding", ["same", "symmetric"])
def test_efficientnet_lite_exports_with_dynamic_sizes_under_both_paddings(tmp_path, padding):
    """TF "same" padding depends on each input's size: the exported graph must keep that, not the example's."""
    from tconvseg.nn import FCN, efficientnet_lite_encoder
    from tconvseg.tasks.export import export_onnx, export_torchscript, parity

    net = FCN(efficientnet_lite_encoder("efficientnet_lite0", padding=padding, stochastic_depth=0.0), 11, topology="8s").eval()
    example = torch.randn(2, 3, 96, 128)  # even: "same" pads (0, 1) here and (1, 1) at the odd sizes below
    for run in (export_onnx(net, example, tmp_path / "net.onnx", None), export_torchscript(net, example, tmp_path / "net.pt")):
        for row in parity(net, run, [(97, 131), (33, 47), (64, 64)]):
            assert row["output_shape"][2:] == row["size"] and row["max_abs_diff"] < 1e-4 and row["same_argmax"] == 1.0
