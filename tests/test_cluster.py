"""Run folders (one per run, stable per SLURM job), the SLURM plugin, and a preempted SLURM job that
is requeued and resumes from its own checkpoint (SLURM simulated by its environment variables)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from datetime import datetime
from pathlib import Path

import pytest
import torch
from hydra import compose, initialize_config_dir
from lightning.fabric.plugins.environments import SLURMEnvironment

import tconvseg.training.cluster
from tconvseg.tasks.train import SIGTERM_EXIT_CODE
from tconvseg.training.builders import build_trainer
from tconvseg.training.checkpoints import CKPT_RUN_IDENTITY, load_checkpoint
from tconvseg.training.cluster import requeued_checkpoint, run_name
from tconvseg.training.run_record import RunRecord
from tests.helpers.configs import CHEAP, CONFIG_DIR, compose_cfg
from tests.helpers.scripts import ROOT

SLURM_JOB = {
    "SLURM_JOB_ID": "4242", "SLURM_NTASKS": "1", "SLURM_NTASKS_PER_NODE": "1", "SLURM_NNODES": "1", "SLURM_PROCID": "0",
    "SLURM_LOCALID": "0", "SLURM_NODEID": "0", "SLURM_JOB_NAME": "train", "SLURM_NODELIST": "localhost", "SLURM_STEP_ID": "0",
}


@pytest.fixture
def no_cluster(monkeypatch):
    for name in [*SLURM_JOB, "SLURM_ARRAY_JOB_ID", "SLURM_ARRAY_TASK_ID", "TORCHELASTIC_RUN_ID"]:
        monkeypatch.delenv(name, raising=False)
    return monkeypatch


def test_run_names_per_launcher(no_cluster):
    assert len(run_name().rsplit("_", 1)[1]) == 6
    for key, value in SLURM_JOB.items():
        no_cluster.setenv(key, value)
    assert run_name() == "slurm-4242.0"
    no_cluster.setenv("SLURM_STEP_ID", "1")  # the job's next srun: another run
    assert run_name() == "slurm-4242.1"
    no_cluster.setenv("SLURM_ARRAY_JOB_ID", "77")
    no_cluster.setenv("SLURM_ARRAY_TASK_ID", "3")
    assert run_name() == "slurm-77_3.1"
    no_cluster.setenv("SLURM_JOB_NAME", "interactive")  # an interactive allocation is not a SLURM-managed run
    assert not run_name().startswith("slurm-")
    no_cluster.setenv("TORCHELASTIC_RUN_ID", "exp/7")
    assert run_name() == "torchrun-exp_7"
    no_cluster.setenv("TORCHELASTIC_RUN_ID", "none")  # torchrun's default: not an id
    assert not run_name().startswith("torchrun-")


class _FrozenClock(datetime):
    @classmethod
    def now(cls, tz=None):
        return datetime(2026, 11, 25, 12, 0, 0)


def _run_dirs(count: int) -> list[str]:
    """``hydra.run.dir`` of ``count`` separately composed train configs, each resolved twice."""
    dirs = []
    with initialize_config_dir(config_dir=CONFIG_DIR, version_base="1.3"):
        for _ in range(count):
            cfg = compose(config_name="train", return_hydra_config=True)
            first, again = cfg.hydra.run.dir, cfg.hydra.run.dir
            assert first == again  # resolved once per run
            dirs.append(first)
    return dirs


def test_runs_started_in_the_same_second_get_their_own_folders(no_cluster):
    no_cluster.setattr(tconvseg.training.cluster, "datetime", _FrozenClock)
    dirs = _run_dirs(3)
    assert len(set(dirs)) == 3
    assert all(Path(d).name.startswith("2026-11-25_12-00-00_") for d in dirs)


def test_a_slurm_job_always_gets_the_same_folder(no_cluster):
    for key, value in SLURM_JOB.items():
        no_cluster.setenv(key, value)
    assert {Path(d).name for d in _run_dirs(2)} == {"slurm-4242.0"}


def test_trainer_gets_slurm_auto_requeue_only_under_slurm(no_cluster, tmp_path):
    cfg = compose_cfg("train", tmp_path, ["data=synthetic", "model=tiny", *CHEAP])
    assert not isinstance(build_trainer(cfg)._accelerator_connector.cluster_environment, SLURMEnvironment)
    for key, value in SLURM_JOB.items():
        no_cluster.setenv(key, value)
    environment = build_trainer(cfg)._accelerator_connector.cluster_environment
    assert isinstance(environment, SLURMEnvironment)
    assert environment.auto_requeue and environment.requeue_signal == signal.SIGUSR1


def test_a_foreign_checkpoint_in_the_job_folder_is_refused(no_cluster, tmp_path):
    identity = {"experiment": None, "model": {"topology": "8s"}, "data": {"info": "synthetic"}}
    record = RunRecord.from_dict(identity)
    (tmp_path / "checkpoints").mkdir()
    torch.save({"global_step": 5, CKPT_RUN_IDENTITY: {**identity, "model": {"topology": "full"}}}, tmp_path / "checkpoints" / "last.ckpt")
    assert requeued_checkpoint(tmp_path, record) is None  # not a SLURM job: nothing to resume
    for key, value in SLURM_JOB.items():
        no_cluster.setenv(key, value)
    with pytest.raises(ValueError, match=r"SLURM job 4242: its run folder .* holds last.ckpt of another run .*topology=full"):
        requeued_checkpoint(tmp_path, record)


def _wait_for(condition, proc: subprocess.Popen, what: str) -> None:
    deadline = time.monotonic() + 300
    while not condition():
        assert proc.poll() is None, f"the run ended before {what}: " + proc.communicate()[0][-3000:]
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.05)


def test_preempted_slurm_job_is_requeued_and_resumes_from_its_own_checkpoint(tmp_path):
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    scontrol = bin_dir / "scontrol"  # records what Lightning asks of SLURM
    scontrol.write_text(f'#!/bin/sh\necho "$@" >> {bin_dir / "scontrol.calls"}\n')
    scontrol.chmod(0o755)
    env = {**os.environ, **SLURM_JOB, "TCONVSEG_ROOT": str(tmp_path), "OMP_NUM_THREADS": "1",
           "PATH": f"{bin_dir}{os.pathsep}{os.environ['PATH']}", "PYTHONPATH": os.pathsep.join([str(ROOT / "src"), str(ROOT)])}
    # 128 images, batch 8: 16 steps an epoch, 4 epochs.
    args = [sys.executable, str(ROOT / "scripts" / "train.py"), "data=synthetic", "model=tiny", "data.dataset.num_samples.train=128",
            "trainer.max_epochs=4", "validate_best=false", *CHEAP]
    run_dir = tmp_path / "logs" / "train" / "runs" / "slurm-4242.0"

    first = subprocess.Popen(args, cwd=tmp_path, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    _wait_for(lambda: (run_dir / "checkpoints" / "last.ckpt").is_file(), first, "the first epoch's checkpoint")
    first.send_signal(signal.SIGUSR1)  # what `sbatch --signal=USR1@90` sends before the time limit
    _wait_for(lambda: (run_dir / "hpc_ckpt_1.ckpt").is_file(), first, "Lightning's hpc checkpoint")
    first.send_signal(signal.SIGTERM)  # then SLURM stops the job
    out, _ = first.communicate(timeout=120)
    assert first.returncode == SIGTERM_EXIT_CODE, out[-3000:]
    assert (bin_dir / "scontrol.calls").read_text() == "requeue 4242\n"

    candidates = [run_dir / "hpc_ckpt_1.ckpt", run_dir / "checkpoints" / "last.ckpt"]
    steps = {path: load_checkpoint(path)["global_step"] for path in candidates}
    furthest = max(candidates, key=lambda p: (steps[p], p.stat().st_mtime))
    assert 0 < steps[furthest] < 64

    second = subprocess.run(args, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300)  # the requeued job
    out = second.stdout + second.stderr
    assert second.returncode == 0, out[-3000:]
    assert f"SLURM job 4242 was requeued: resuming from {furthest} (global step {steps[furthest]})" in out
    assert f"Restored all states from the checkpoint at {furthest}" in out
    assert [p.name for p in run_dir.parent.iterdir()] == ["slurm-4242.0"]
    assert load_checkpoint(run_dir / "checkpoints" / "last.ckpt")["global_step"] == 64


def test_slurm_launcher_asks_for_one_task_per_device_on_each_node(tmp_path):
    """`-m hydra/launcher=slurm` through Hydra and submitit up to `sbatch` (a stand-in that keeps the script)."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    (bin_dir / "sbatch").write_text(f'#!/bin/sh\ncp "$1" {bin_dir / "submitted.sh"}\necho "sbatch: stand-in" >&2\nexit 1\n')
    (bin_dir / "srun").write_text("#!/bin/sh\nexit 1\n")  # submitit checks that srun exists
    for tool in ("sbatch", "srun"):
        (bin_dir / tool).chmod(0o755)
    env = {**os.environ, "TCONVSEG_ROOT": str(tmp_path), "PATH": f"{bin_dir}{os.pathsep}{os.environ['PATH']}",
           "PYTHONPATH": os.pathsep.join([str(ROOT / "src"), str(ROOT)])}
    args = ["-m", "hydra/launcher=slurm", "hydra.launcher.partition=gpu", "trainer=ddp", "trainer.devices=4", "trainer.num_nodes=2",
            "data=synthetic", "model=tiny"]
    result = subprocess.run([sys.executable, str(ROOT / "scripts" / "train.py"), *args], cwd=tmp_path, env=env,
                            capture_output=True, text=True, timeout=300)
    assert result.returncode != 0 and "sbatch: stand-in" in result.stderr
    script = (bin_dir / "submitted.sh").read_text()
    for line in ("--ntasks-per-node=4", "--nodes=2", "--gpus-per-node=4", "--partition=gpu", "--signal=USR2@120", "--time=1440"):
        assert f"#SBATCH {line}\n" in script, line
    assert "srun --unbuffered" in script and "submitit.core._submit" in script
