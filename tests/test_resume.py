"""Interrupted runs: SIGTERM / SIGKILL then `ckpt_path=last` ends exactly where an uninterrupted run ends;
resume keeps best score and top-k; finished runs, other experiments and non-finite numbers."""

from __future__ import annotations

import logging
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from types import SimpleNamespace

import lightning as L
import pytest
import torch

from tconvseg.callbacks import NonFiniteError, StopOnNonFinite
from tconvseg.tasks.train import SIGTERM_EXIT_CODE, train
from tconvseg.training.builders import ConfigError
from tconvseg.training.checkpoints import load_checkpoint, resume_checkpoint_path
from tests.helpers.configs import CHEAP, SYNTH, compose_cfg
from tests.helpers.scripts import ROOT

SCRIPT = ROOT / "scripts" / "train.py"
#: 32 batches an epoch (about a second each on a CPU), 5 epochs; augmentation on (hflip).
LONG_RUN = [
    "data=synthetic", "model=tiny", "data.dataset.num_samples.train=256", "trainer.max_epochs=5", "validate_best=false",
    "callbacks.rich_progress_bar=null", "+trainer.enable_progress_bar=false", "logger=csv", "data.num_workers=0",
    "callbacks.model_checkpoint.save_top_k=2", "seed=3",
]


def _start(root: Path, *extra: str) -> subprocess.Popen:
    env = {**os.environ, "TCONVSEG_ROOT": str(root), "OMP_NUM_THREADS": "1"}
    return subprocess.Popen([sys.executable, str(SCRIPT), *LONG_RUN, *extra], cwd=root, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)


def _finish(proc: subprocess.Popen) -> str:
    out, _ = proc.communicate(timeout=600)
    assert proc.returncode == 0, out[-3000:]
    return out


def _last(root: Path) -> Path:
    (path,) = (root / "logs" / "train" / "runs").glob("*/checkpoints/last.ckpt")
    return path


def _interrupt_after_epoch(proc: subprocess.Popen, root: Path, epoch: int, sig: int) -> None:
    """Send ``sig`` once last.ckpt records ``epoch`` (0-based) complete, while the run goes on."""
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline and proc.poll() is None:
        found = list((root / "logs" / "train" / "runs").glob("*/checkpoints/last.ckpt"))
        if found and load_checkpoint(found[0])["epoch"] >= epoch:
            break
        time.sleep(0.05)
    assert proc.poll() is None, "the run ended before it could be interrupted"
    time.sleep(0.3)  # into the next epoch
    proc.send_signal(sig)


def _final_state(root: Path) -> tuple[dict, dict]:
    checkpoint = load_checkpoint(_last(root))
    (mc,) = [s for s in checkpoint["callbacks"].values() if "best_model_score" in s and s.get("monitor")]
    return checkpoint["state_dict"], mc


@pytest.fixture(scope="module")
def uninterrupted(tmp_path_factory):
    root = tmp_path_factory.mktemp("straight")
    _finish(_start(root))
    return _final_state(root)


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGKILL], ids=["sigterm", "sigkill"])
def test_interrupted_then_resumed_run_ends_bit_identical(tmp_path, uninterrupted, sig):
    proc = _start(tmp_path)
    _interrupt_after_epoch(proc, tmp_path, epoch=1, sig=sig)
    out, _ = proc.communicate(timeout=300)
    if sig == signal.SIGTERM:
        assert proc.returncode == SIGTERM_EXIT_CODE, out[-3000:]
        assert "stopped by SIGTERM" in out and "ckpt_path=last" in out
    else:
        assert proc.returncode == -signal.SIGKILL
    interrupted_at = load_checkpoint(_last(tmp_path))["epoch"]
    assert 1 <= interrupted_at < 4

    _finish(_start(tmp_path, "ckpt_path=last"))
    state, mc = _final_state(tmp_path)
    ref_state, ref_mc = uninterrupted
    assert state.keys() == ref_state.keys()
    assert all(torch.equal(state[k], ref_state[k]) for k in state), "resumed weights differ from the uninterrupted run"
    assert float(mc["best_model_score"]) == float(ref_mc["best_model_score"])
    assert Path(mc["best_model_path"]).name == Path(ref_mc["best_model_path"]).name
    # Checkpoints stay in the first run's folder (the resuming invocation's own folder holds only
    # Hydra's config and log), and the top-2 are kept across the resume.
    assert len({p.parent for p in (tmp_path / "logs").rglob("*.ckpt")}) == 1
    assert sorted(p.name for p in _last(tmp_path).parent.glob("epoch*.ckpt")) == sorted(Path(p).name for p in ref_mc["best_k_models"])


def test_resume_keeps_best_score_and_top_k(tmp_path):
    extra = ["callbacks.model_checkpoint.save_top_k=2", "validate_best=false"]
    _, first = train(compose_cfg("train", tmp_path, [*SYNTH, *extra, "trainer.max_epochs=2"], run="first"))
    before = first["trainer"].checkpoint_callback
    best_before = float(before.best_model_score)
    _, resumed = train(compose_cfg("train", tmp_path, [*SYNTH, *extra, "trainer.max_epochs=4", "ckpt_path=last"], run="second"))
    callback = resumed["trainer"].checkpoint_callback
    assert float(callback.best_model_score) >= best_before
    assert len(callback.best_k_models) == 2
    kept = sorted((tmp_path / "logs").rglob("epoch*.ckpt"))
    assert len(kept) == 2 and {p.parent for p in kept} == {Path(before.dirpath)}
    assert not (tmp_path / "logs" / "train" / "runs" / "second").exists()


def test_last_ckpt_follows_every_epoch_after_the_best_stops_improving(tmp_path):
    """Lightning 2.6's ``save_last`` writes last.ckpt only with a new top-k file; ours must not stall at the best.

    The monitor ``step`` with ``mode=min`` makes the first validation the best forever (deterministic, unlike a
    real metric). Resuming from last.ckpt must continue after epoch 2, not from the best epoch 1.
    """
    never_better = ["callbacks.model_checkpoint.monitor=step", "callbacks.model_checkpoint.mode=min", "validate_best=false"]
    _, first = train(compose_cfg("train", tmp_path, [*SYNTH, *never_better, "trainer.max_epochs=2"], run="first"))
    steps_per_epoch = first["trainer"].global_step // 2
    folder = tmp_path / "logs" / "train" / "runs" / "first" / "checkpoints"
    (best,) = folder.glob("epoch*.ckpt")
    assert best.name.startswith("epoch000"), best
    last = load_checkpoint(folder / "last.ckpt")
    assert last["global_step"] == 2 * steps_per_epoch, "last.ckpt stalled at the best checkpoint"
    assert resume_checkpoint_path(first["trainer"].checkpoint_callbacks) == str(folder / "last.ckpt")

    _, resumed = train(compose_cfg("train", tmp_path, [*SYNTH, *never_better, "trainer.max_epochs=3", "ckpt_path=last"],
                                   run="second"))
    assert resumed["trainer"].global_step == 3 * steps_per_epoch  # one more epoch, not two
    assert load_checkpoint(folder / "last.ckpt")["global_step"] == 3 * steps_per_epoch


def test_resuming_a_finished_run_says_so(tmp_path, caplog):
    train(compose_cfg("train", tmp_path, [*SYNTH, "trainer.max_epochs=1", "validate_best=false"]))
    with caplog.at_level(logging.INFO, logger="tconvseg.tasks.train"):
        metrics, objects = train(compose_cfg("train", tmp_path, [*SYNTH, "trainer.max_epochs=1", "ckpt_path=last"], run="again"))
    assert objects["finished_before"] and "is finished (1 of max_epochs=1 epochs done)" in caplog.text
    assert 0 <= metrics["best/checkpoint_score"] <= 1


def test_resuming_a_finished_run_from_the_script_exits_0(tmp_path):
    env = {**os.environ, "TCONVSEG_ROOT": str(tmp_path)}
    args = [sys.executable, str(SCRIPT), "data=synthetic", "model=tiny", "trainer.max_epochs=1", "validate_best=false",
            "callbacks.rich_progress_bar=null", "+trainer.enable_progress_bar=false", "data.num_workers=0"]
    first = subprocess.run(args, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300)
    assert first.returncode == 0, first.stderr[-2000:]
    again = subprocess.run([*args, "ckpt_path=last"], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300)
    assert again.returncode == 0, again.stderr[-2000:]
    assert "is finished" in again.stdout + again.stderr


def test_last_refuses_a_run_of_another_model_naming_both(tmp_path):
    train(compose_cfg("train", tmp_path, [*SYNTH, "trainer.max_epochs=1", "validate_best=false"]))
    other = compose_cfg("train", tmp_path, ["data=synthetic", "model=fcn_plain", *CHEAP, "ckpt_path=last"], run="b")
    with pytest.raises(ValueError, match=r"another experiment .*topology=8s.* than this one .*topology=full"):
        train(other)


def test_an_explicit_checkpoint_of_another_model_is_refused(tmp_path):
    _, objects = train(compose_cfg("train", tmp_path, [*SYNTH, "trainer.max_epochs=1", "validate_best=false"]))
    other = compose_cfg("train", tmp_path, ["data=synthetic", "model=fcn_plain", *CHEAP, f"ckpt_path={objects['best_checkpoint']}"], run="b")
    with pytest.raises(ValueError, match=r"belongs to another run .*model differ"):
        train(other)


def test_nan_class_weights_are_refused_before_training(tmp_path):
    cfg = compose_cfg("train", tmp_path, [*SYNTH, "trainer.max_epochs=2", "model.class_weighting=[nan,1,1,1]"])
    with pytest.raises(ConfigError, match=r"model.class_weighting=\[nan, 1, 1, 1\] is invalid; expected .*4 finite non-negative"):
        train(cfg)
    assert not list(tmp_path.rglob("*.ckpt"))


def test_nan_loss_stops_training_naming_the_step(tmp_path):
    cfg = compose_cfg("train", tmp_path, [*SYNTH, "trainer.max_epochs=2", "+callbacks.poison._target_=tests.test_resume.PoisonWeightsAt",
                                          "+callbacks.poison.step=0"])
    with pytest.raises(NonFiniteError, match=r"non-finite training loss nan at global step 0 \(epoch 0, batch 0\)"):
        train(cfg)
    assert not list(tmp_path.rglob("*.ckpt"))


class PoisonWeightsAt(L.Callback):
    """Test device: turns the network's first weight into NaN at a given global step."""

    def __init__(self, step: int) -> None:
        self.step = step

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx) -> None:
        if trainer.global_step == self.step:
            with torch.no_grad():
                next(pl_module.net.parameters()).fill_(float("nan"))


def test_nan_loss_after_a_good_epoch_leaves_the_last_checkpoint_intact(tmp_path):
    cfg = compose_cfg("train", tmp_path, [*SYNTH, "trainer.max_epochs=3", "+callbacks.poison._target_=tests.test_resume.PoisonWeightsAt",
                                          "+callbacks.poison.step=12"])  # 8 steps an epoch: in epoch 1
    with pytest.raises(NonFiniteError, match=r"loss nan at global step 12 \(epoch 1, batch 4\)"):
        train(cfg)
    (last,) = tmp_path.rglob("last.ckpt")
    checkpoint = load_checkpoint(last)
    assert checkpoint["global_step"] == 8
    assert all(torch.isfinite(t).all() for t in checkpoint["state_dict"].values())


def test_nan_gradient_stops_before_the_optimizer_step():
    layer = torch.nn.Linear(2, 2)
    layer.weight.grad = torch.tensor([[1.0, float("nan")], [0.0, 0.0]])
    layer.bias.grad = torch.zeros(2)
    trainer = SimpleNamespace(precision_plugin=SimpleNamespace(), global_step=7, current_epoch=1)
    with pytest.raises(NonFiniteError, match=r"non-finite gradient at global step 7 .*\['weight'\]"):
        StopOnNonFinite().on_before_optimizer_step(trainer, layer, None)
    layer.weight.grad = torch.ones(2, 2)
    StopOnNonFinite().on_before_optimizer_step(trainer, layer, None)  # finite: passes
