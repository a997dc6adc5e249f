"""Evaluation pictures: a confusion matrix (CSV counts = predictions counted by hand, PNG) and a samples grid."""

from __future__ import annotations

import csv
import json
import sys

import numpy as np
import pytest
import torch
from PIL import Image

from tconvseg.inference.tta import tta_logits
from tconvseg.tasks.evaluate import evaluate
from tests.helpers.configs import compose_cfg
from tests.helpers.inference import train_tiny


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("run")
    return tmp, train_tiny(tmp)


def _evaluate(tmp, ckpt, *extra):
    return evaluate(compose_cfg("eval", tmp, ["data=synthetic", "data.num_workers=0", f"ckpt_path={ckpt}", *extra]))


def _counted_by_hand(objects, tta: str, scales=(1.0,)) -> np.ndarray:
    system, dataset = objects["model"].eval(), objects["datamodule"].dataset("test")
    k, ignore = system.num_classes, system.ignore_index
    counts = np.zeros((k, k), dtype=np.int64)
    with torch.no_grad():
        for image, truth in dataset:
            pred = tta_logits(system, image[None], tta, scales)[0].argmax(0)
            keep = truth != ignore
            counts += np.bincount((truth[keep] * k + pred[keep]).numpy(), minlength=k * k).reshape(k, k)
    return counts


def _read_csv(path):
    rows = list(csv.reader(path.open()))
    return rows[0], {row[0]: [int(v) for v in row[1:]] for row in rows[1:]}


@pytest.mark.parametrize("tta", ["none", "flip"])
def test_confusion_matrix_csv_holds_the_pixel_counts_of_the_predictions(run, tta):
    tmp, ckpt = run
    metrics, objects = _evaluate(tmp, ckpt, f"tta={tta}", "samples=3")
    folder, names = objects["json_path"].parent, list(objects["datamodule"].info.class_names)
    header, rows = _read_csv(folder / "confusion_matrix_val_last.csv")
    assert header[1:] == names and list(rows) == names
    matrix = np.array([rows[n] for n in names])
    expected = _counted_by_hand(objects, tta)
    assert np.array_equal(matrix, expected)
    assert metrics["val/pixel_acc"] == pytest.approx(np.trace(matrix) / matrix.sum(), abs=1e-6)
    with Image.open(folder / "confusion_matrix_val_last.png") as png:
        assert png.format == "PNG" and min(png.size) > 100
    with Image.open(folder / "samples_val_last.png") as grid:
        h, w = objects["datamodule"].dataset("test")[0][1].shape
        assert grid.format == "PNG" and grid.width >= 3 * w and grid.height >= 3 * h  # 3 columns, 3 rows


def test_multiscale_tta_scores_the_averaged_copies_and_says_so_in_the_report(run):
    tmp, ckpt = run
    metrics, objects = _evaluate(tmp, ckpt, "tta=multiscale_flip", "tta_scales=[0.75,1.25]", "samples=0")
    folder, names = objects["json_path"].parent, list(objects["datamodule"].info.class_names)
    _, rows = _read_csv(folder / "confusion_matrix_val_last.csv")
    assert np.array_equal(np.array([rows[n] for n in names]), _counted_by_hand(objects, "multiscale_flip", (0.75, 1.25)))
    report = json.loads(objects["json_path"].read_text())
    assert report["tta"] == {"mode": "multiscale_flip", "scales": [0.75, 1.25]}
    plain, objects = _evaluate(tmp, ckpt, "samples=0")
    assert json.loads(objects["json_path"].read_text())["tta"] == {"mode": "none"}
    assert plain["val/loss"] != metrics["val/loss"]


def test_bad_tta_scales_are_named_before_anything_is_loaded(tmp_path):
    missing = tmp_path / "no_such.ckpt"  # not read: the options are checked first
    with pytest.raises(ValueError, match=r"tta_scales=\[0\] is invalid"):
        _evaluate(tmp_path, missing, "tta=multiscale", "tta_scales=[0]", "samples=0")


def test_flip_tta_changes_the_scores(run):
    tmp, ckpt = run
    plain, _ = _evaluate(tmp, ckpt, "samples=0")
    flipped, _ = _evaluate(tmp, ckpt, "tta=flip", "samples=0")
    assert plain["val/loss"] != flipped["val/loss"]


def test_without_matplotlib_the_csv_is_still_written(run, monkeypatch, caplog, tmp_path):
    tmp, ckpt = run
    monkeypatch.setitem(sys.modules, "matplotlib", None)  # makes `import matplotlib` raise ImportError
    _, objects = _evaluate(tmp, ckpt, f"output_json={tmp_path / 'report.json'}", "samples=0")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["confusion_matrix_val_last.csv", "report.json"]
    assert "pip install 'tconvseg[plots]'" in caplog.text
