"""Multiruns for real: a 2-trial Optuna sweep (hparams_search=camvid_optuna) and a 2-job submitit_local
launch, each job a training run in its own folder of one sweep folder."""

from __future__ import annotations

import os
import pickle
from pathlib import Path

import pytest
import yaml

from tconvseg.training.checkpoints import load_checkpoint
from tests.helpers.scripts import run_script

#: One epoch of 2 training batches and 1 validation batch: real checkpoints, real objective.
CHEAP_RUN = [
    "data=synthetic", "model=tiny", "trainer=cpu", "trainer.max_epochs=1", "+trainer.limit_train_batches=2",
    "+trainer.limit_val_batches=1", "trainer.num_sanity_val_steps=0", "callbacks.rich_progress_bar=null",
    "+trainer.enable_progress_bar=false", "+trainer.enable_model_summary=false", "data.num_workers=0",
    "data.dataset.num_samples={train:16,val:8,test:8}",
]


def _train(args: list[str], root: Path) -> Path:
    """Run scripts/train.py in ``root``; the one multirun folder it made."""
    run_script("train.py", args, root, timeout=400)
    (sweep_dir,) = (root / "logs" / "train" / "multiruns").iterdir()
    return sweep_dir


def _trial_score(trial: Path) -> float:
    """The trial's best validation mIoU, as its best checkpoint recorded it."""
    (best,) = (trial / "checkpoints").glob("epoch*.ckpt")
    (state,) = [s for s in load_checkpoint(best)["callbacks"].values() if "best_model_score" in s and s.get("monitor")]
    return float(state["best_model_score"])


def test_optuna_sweep_runs_two_trials_and_reports_the_best(tmp_path):
    sweep_dir = _train(["hparams_search=camvid_optuna", "hydra.sweeper.n_trials=2", *CHEAP_RUN], tmp_path)
    trials = sorted(p for p in sweep_dir.iterdir() if p.is_dir() and not p.name.startswith("."))
    assert [p.name for p in trials] == ["0", "1"]
    results = yaml.safe_load((sweep_dir / "optimization_results.yaml").read_text())
    searched = {"model.optimizer.lr", "model.optimizer.weight_decay", "model.net.decoder_channels", "model.net.topology"}
    assert set(results["best_params"]) == searched
    scores = {}
    for trial in trials:
        overrides = yaml.safe_load((trial / ".hydra" / "overrides.yaml").read_text())
        sampled = dict(o.split("=", 1) for o in overrides if o.split("=", 1)[0] in searched)
        assert set(sampled) == searched, overrides
        config = yaml.safe_load((trial / ".hydra" / "config.yaml").read_text())
        assert config["model"]["net"]["topology"] == sampled["model.net.topology"]
        assert config["optimized_metric"] == "best/val/mIoU"
        scores[trial.name] = (_trial_score(trial), sampled)
    best_score, best_params = max(scores.values(), key=lambda item: item[0])
    assert results["best_value"] == pytest.approx(best_score, abs=1e-6)
    assert {k: str(v) for k, v in results["best_params"].items()} == best_params


def test_submitit_local_launches_two_jobs_as_processes(tmp_path):
    sweep_dir = _train(["-m", "hydra/launcher=submitit_local", "model.optimizer.lr=0.001,0.004", *CHEAP_RUN], tmp_path)
    results = sorted((sweep_dir / ".submitit").glob("*/*_result.pkl"))
    assert len(results) == 2
    pids = {path.parent.name for path in results}  # the local executor's job ids are process ids
    assert len(pids) == 2 and str(os.getpid()) not in pids
    for path in results:
        status, job_return = pickle.loads(path.read_bytes())  # (status, hydra JobReturn) written by the job's process
        assert status == "success" and 0.0 <= job_return.return_value <= 1.0  # the objective: best/val/mIoU
    for num, lr in (("0", 0.001), ("1", 0.004)):
        job = sweep_dir / num
        config = yaml.safe_load((job / ".hydra" / "config.yaml").read_text())
        assert config["model"]["optimizer"]["lr"] == lr
        assert (job / "checkpoints" / "last.ckpt").is_file() and (job / "csv" / "metrics.csv").is_file()
        assert str(job) in (job / "train.log").read_text()  # "Output dir: <job folder>"


def test_a_sweep_on_the_confirmation_drive_is_refused_before_its_first_trial(tmp_path):
    from tests.helpers.fakes import make_camvid_tree

    make_camvid_tree(tmp_path / "data" / "CamVid", n_train=6, n_val=2, n_test=0, size=(24, 32), groups=("0001TP", "0006R0", "0016E5"))
    args = ["experiment=protocol_confirm_steps", "hparams_search=drive_holdout_optuna", "hydra.sweeper.n_trials=1", "model=tiny"]
    result = run_script("train.py", args, tmp_path, timeout=400, check=False)
    assert result.returncode != 0
    assert "a sweep optimising optimized_metric=val/mIoU with data.holdout holding out ['0016E5']" in result.stdout + result.stderr
    assert not list(tmp_path.rglob("*.ckpt"))
