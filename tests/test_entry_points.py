"""The user-facing commands: scripts/*.py and the console scripts, as subprocesses."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.helpers.configs import QUIET
from tests.helpers.scripts import ROOT


def run(args: list[str], tmp_path: Path, env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    env = {**os.environ, "TCONVSEG_ROOT": str(tmp_path), **(env or {})}
    result = subprocess.run(args, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    return result


def test_train_script_then_eval_console_script(tmp_path):
    run([sys.executable, str(ROOT / "scripts" / "train.py"), "experiment=synthetic_quick", "trainer.max_epochs=2", *QUIET], tmp_path)
    checkpoints = sorted((tmp_path / "logs" / "train" / "runs").glob("*/checkpoints/epoch*.ckpt"))
    assert len(checkpoints) == 1
    eval_cmd = shutil.which("tconvseg-eval", path=str(Path(sys.executable).parent))
    if eval_cmd is None:
        pytest.fail("console script tconvseg-eval is not installed next to this Python (pip install -e .)")
    result = run([eval_cmd, "data=synthetic", "data.num_workers=0", f"ckpt_path={checkpoints[0]}"], tmp_path)
    assert "val: per-class IoU" in result.stdout
    report = json.loads((checkpoints[0].parents[1] / f"eval_val_{checkpoints[0].stem}.json").read_text())
    assert f"{report['metrics']['val/mIoU']:.4f}" in checkpoints[0].name


def test_shapes_script_shows_restored_sizes(tmp_path):
    result = run([sys.executable, str(ROOT / "scripts" / "shapes.py"), "--encoders", "resnet18", "--sizes", "97x131", "5x3"], tmp_path)
    assert "97x131" in result.stdout and "NO" not in result.stdout


def test_bad_override_is_reported_by_hydra(tmp_path):
    result = subprocess.run(
        [sys.executable, str(ROOT / "scripts" / "train.py"), "model=fcn9s"], cwd=tmp_path, capture_output=True, text=True, timeout=120
    )
    assert result.returncode != 0
    assert "Could not find 'model/fcn9s'" in result.stderr and "fcn8s_resnet18" in result.stderr


def test_a_non_editable_install_trains_from_outside_the_checkout(tmp_path):
    """`pip install .` (not -e) carries the configs: its console script runs anywhere."""
    target, elsewhere = tmp_path / "site", tmp_path / "elsewhere"
    elsewhere.mkdir()
    build = subprocess.run(
        [sys.executable, "-m", "pip", "install", "-q", "--no-deps", "--no-build-isolation", "--target", str(target), str(ROOT)],
        capture_output=True, text=True, timeout=300, cwd=tmp_path,
    )
    assert build.returncode == 0, build.stderr[-3000:]
    assert (target / "tconvseg" / "configs" / "train.yaml").is_file()
    env = {**os.environ, "PYTHONPATH": str(target), "TCONVSEG_ROOT": str(elsewhere)}
    probe = [sys.executable, "-c", "import tconvseg; print(tconvseg.__file__)"]
    where = subprocess.run(probe, env=env, capture_output=True, text=True, cwd=elsewhere)
    assert where.stdout.startswith(str(target)), where.stdout + where.stderr  # not the checkout
    result = run([str(target / "bin" / "tconvseg-train"), "debug=fdr", "data=synthetic", "model=tiny", *QUIET],
                 elsewhere, env={"PYTHONPATH": str(target)})
    assert "Running in `fast_dev_run` mode" in result.stderr + result.stdout
    (config,) = (elsewhere / "logs" / "train" / "runs").glob("*/.hydra/config.yaml")
    assert "tconvseg.data.synthetic_split" in config.read_text()


def test_user_config_dir_adds_options(tmp_path):
    """$TCONVSEG_CONFIG_DIR (or --config-dir) joins the search path: a user's own model option."""
    user = tmp_path / "my_configs" / "model"
    user.mkdir(parents=True)
    (user / "my_tiny.yaml").write_text("defaults:\n  - tiny\n  - _self_\nnet:\n  decoder_channels: 8\n")
    result = run([sys.executable, str(ROOT / "scripts" / "train.py"), "debug=fdr", "data=synthetic", "model=my_tiny", *QUIET],
                 tmp_path, env={"TCONVSEG_CONFIG_DIR": str(tmp_path / "my_configs")})
    assert result.returncode == 0
    config = (next((tmp_path / "logs" / "train" / "runs").glob("*/.hydra/config.yaml"))).read_text()
    assert "decoder_channels: 8" in config


def test_missing_user_config_dir_is_named(tmp_path):
    env = {**os.environ, "TCONVSEG_ROOT": str(tmp_path), "TCONVSEG_CONFIG_DIR": str(tmp_path / "nope")}
    result = subprocess.run([sys.executable, str(ROOT / "scripts" / "train.py"), "debug=fdr"], cwd=tmp_path, env=env,
                            capture_output=True, text=True, timeout=120)
    assert result.returncode != 0 and "TCONVSEG_CONFIG_DIR=" in result.stderr and "nope is not a folder" in result.stderr
