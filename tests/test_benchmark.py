"""scripts/benchmark.py: one table with every column for model options, a torchvision peer and a
training run folder (1 timed step at tiny sizes; speeds are not checked, only that they are measured)."""

from __future__ import annotations

import json

import pytest

from tconvseg.tasks.benchmark import _cell, main
from tconvseg.tasks.train import train
from tconvseg.training.runs import read_run
from tests.helpers.configs import CHEAP, compose_cfg

COLUMNS = ["model / run", "kind", "params M", "GFLOPs 64×96", "train img/s 32×48", "infer img/s 32×48", "first step s", "peak MiB Δ",
           "val mIoU best %", "val mIoU final %", "train mIoU %", "budget min", "spent min"]


@pytest.fixture(scope="module")
def budgeted_run(tmp_path_factory):
    """A finished budgeted run of the tiny model (one epoch, validated at its end)."""
    tmp_path = tmp_path_factory.mktemp("run")
    cfg = compose_cfg("train", tmp_path, ["experiment=baseline_cpu_15min", "data=synthetic", "model=tiny", *CHEAP, "trainer.max_epochs=1",
                                          "trainer.val_check_interval=1.0", "validate_best=false"])
    _, objects = train(cfg)
    return objects["trainer"].checkpoint_callback


def test_a_run_folder_is_read(budgeted_run):
    run = read_run(budgeted_run.dirpath.removesuffix("/checkpoints"))
    assert run.best_val_miou == pytest.approx(float(budgeted_run.best_model_score))
    assert run.final_val_miou == pytest.approx(run.best_val_miou) and 0 <= run.final_train_miou <= 1
    assert run.budget_s == 900 and 0 < run.spent_s < 900
    assert run.num_classes == 4 and run.model_cfg["net"]["_target_"] == "tconvseg.nn.FCN"


def test_a_folder_without_checkpoints_is_refused(tmp_path):
    with pytest.raises(FileNotFoundError, match=r"--runs .*: no checkpoints/last.ckpt in it; expected a training run folder"):
        read_run(tmp_path)


def test_the_table_has_every_column_for_options_peers_and_runs(budgeted_run, tmp_path, capsys):
    folder = budgeted_run.dirpath.removesuffix("/checkpoints")
    out = tmp_path / "rows.json"
    main(["--models", "peer_lraspp_mobilenet_v3_large", "--runs", folder, "--steps", "1", "--batch", "2", "--train-size", "32x48",
          "--infer-size", "32x48", "--flops-size", "64x96", "--threads", "1", "--json", str(out)])
    printed = capsys.readouterr().out
    for column in COLUMNS:
        assert column in printed, f"column {column!r} missing"
    assert "to the best peer: peer_lraspp_mobilenet_v3_large" in printed
    peer, run = json.loads(out.read_text())
    assert peer["is_peer"] and not run["is_peer"]
    for row in (peer, run):
        assert set(row["speed"]) == {"params_m", "gflops", "first_step_s", "train_ips", "infer_ips", "peak_mib"}
        assert all(isinstance(v, float) and v > 0 for k, v in row["speed"].items() if k != "peak_mib")
    assert run["speed"]["params_m"] < peer["speed"]["params_m"]
    best = float(budgeted_run.best_model_score)
    assert run["run"]["best_val_miou"] == pytest.approx(best)
    assert f"{100 * best:.1f}" in printed and "(1.00×)" in printed


def test_cells_give_ratios_and_point_differences():
    assert _cell(40.21, ".1f", 58.76, delta=True) == "40.2 (-18.5)"  # points, both in percent
    assert _cell(59.79, ".1f", 58.76, delta=True) == "59.8 (+1.0)"
    assert _cell(27.3, ".1f", 29.7) == "27.3 (0.92×)"
    assert _cell(None, ".1f", 29.7) == "–"


def test_loop_mode_measures_the_step_alone_and_the_full_loop(tmp_path, capsys):
    out = tmp_path / "loop.json"
    device = "experiment=synthetic_quick data.augment_on=device data.train_transforms.crop_size=[32,48]"
    specs = ["experiment=synthetic_quick data.augment_on=loader", device]
    rows = main(["--loop", *specs, "--steps", "2", "--json", str(out)])
    assert [r["augment_on"] for r in rows] == ["loader", "device"]
    assert rows[0]["batch"] == (8, 3, 64, 96) and rows[1]["batch"] == (8, 3, 32, 48)
    for r in rows:
        assert r["step_ips"] > 0 and r["loop_ips"] > 0 and r["ratio"] == pytest.approx(r["loop_ips"] / r["step_ips"])
        assert r["gpu_busy"] is None and r["peak_mib"] is None  # CPU: ratio only
    assert "full loop img/s" in capsys.readouterr().out and len(json.loads(out.read_text())) == 2


def test_the_use_benchmark_measures_predict_and_onnx(budgeted_run, tmp_path):
    """scripts/bench_use.py on the tiny model and three odd-sized images: every column measured, the export's parity small."""
    import importlib.util

    import numpy as np
    from PIL import Image

    pytest.importorskip("onnxruntime")
    spec = importlib.util.spec_from_file_location("bench_use", "scripts/bench_use.py")
    bench_use = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(bench_use)
    images = tmp_path / "images"
    images.mkdir()
    for i in range(3):
        Image.fromarray(np.random.default_rng(i).integers(0, 256, (37, 53, 3), dtype=np.uint8)).save(images / f"{i}.png")
    ckpt = f"{budgeted_run.dirpath}/last.ckpt"
    rows = bench_use.main(["--ckpt", f"tiny={ckpt}", "--images", str(images), "--odd", "33", "35", "--data", "synthetic",
                           "--json", str(tmp_path / "rows.json")])
    (row,) = json.loads((tmp_path / "rows.json").read_text())
    assert row == rows[0] and row["images"] == 3 and row["size"] == [37, 53]
    assert all(row[k] > 0 for k in ("predict_s", "predict_img_s", "export_s", "onnx_img_s", "onnx_img_s_odd"))
    assert row["onnx_max_abs_diff"] < 1e-3
    with pytest.raises(SystemExit, match=r"--ckpt 'tiny': expected NAME=PATH"):
        bench_use.main(["--ckpt", "tiny", "--images", str(images)])


def test_deploy_mode_times_each_runtime_against_eager_fp32(tmp_path, capsys):
    out = tmp_path / "deploy.json"
    record = tmp_path / "tables" / "deploy_speed.json"
    record.parent.mkdir()
    rows = main(["--deploy", "--models", "tiny", "--sizes", "32x48", "--steps", "2", "--num-classes", "4",
                 "--backends", "eager", "onnx_int8_qoperator", "--json", str(out), "--record", str(record), "--machine", "test box"])
    assert [(r["model"], r["size"], r["backend"]) for r in rows] == [("tiny", [32, 48], "eager"), ("tiny", [32, 48], "onnx_int8_qoperator")]
    eager, int8 = rows
    assert eager["error"] is None and int8["error"] is None, (eager["error"], int8["error"])
    assert eager["ratio"] == pytest.approx(1.0) and int8["ratio"] == pytest.approx(int8["ips"] / eager["ips"])
    assert all(r["ips"] > 0 and r["p50_ms"] > 0 and r["setup_s"] > 0 for r in rows)
    assert json.loads(out.read_text()) == rows
    printed = capsys.readouterr().out
    assert "Deployment speed, batch 1" in printed and "onnx_int8_qoperator" in printed
    # the results page's table record: renders through the records builder with the measured figures
    from tests.test_results_records import TOOL

    written = json.loads(record.read_text())
    assert written["provenance"]["machine"] == "test box" and "--deploy" in written["provenance"]["command"]
    markdown = TOOL.record_table("deploy_speed", tables=record.parent)
    assert f"| {int8['ips']:.2f} | {int8['ratio']:.2f}\u00d7 |" in markdown and markdown.count("\n") == 4


def test_a_failing_backend_is_a_row_that_says_why_and_unknown_ones_are_named():
    from tconvseg.tasks.benchmark import option_row
    from tconvseg.tasks.deploy_benchmark import deploy_rows, measure_backend

    model_cfg = option_row("tiny", [], 4).model_cfg
    row = measure_backend(model_cfg, 4, "tflite", (16, 16), {"batch": 1, "steps": 1})
    assert row["ips"] is None and row["error"].startswith("ValueError: backend 'tflite' is unknown; expected one of eager")
    with pytest.raises(ValueError, match=r"--backends \['tensorrt'\] unknown; expected some of eager"):
        deploy_rows(["tiny"], [(16, 16)], ["eager", "tensorrt"], {"batch": 1, "steps": 1})
