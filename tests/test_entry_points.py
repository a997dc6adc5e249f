"""The user-facing commands: scripts/*.py and the console scripts, as subprocesses."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
QUIET = ["callbacks.rich_progress_bar=null", "+trainer.enable_progress_bar=false", "data.num_workers=0"]


def run(args: list[str], tmp_path: Path) -> subprocess.CompletedProcess:
    env = {**os.environ, "PROJECT_ROOT": str(tmp_path)}
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


def test_demo_script_shows_restored_sizes(tmp_path):
    result = run([sys.executable, str(ROOT / "scripts" / "demo.py"), "--encoders", "resnet18", "--sizes", "97x131", "5x3"], tmp_path)
    assert "97x131" in result.stdout and "NO" not in result.stdout


def test_bad_override_is_reported_by_hydra(tmp_path):
    result = subprocess.run(
        [sys.executable, str(ROOT / "scripts" / "train.py"), "model=fcn9s"], cwd=tmp_path, capture_output=True, text=True, timeout=120
    )
    assert result.returncode != 0
    assert "Could not find 'model/fcn9s'" in result.stderr and "fcn8s_resnet18" in result.stderr
