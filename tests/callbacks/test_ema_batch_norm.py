"""EMA weights get batch-norm statistics of their own: `EMAWeights(recompute_bn_batches=...)`."""

from __future__ import annotations

import copy

import pytest
import torch

from tconvseg.callbacks import EMAWeights
from tconvseg.nn import recompute_batch_norm
from tconvseg.tasks.train import train
from tconvseg.training.checkpoints import load_checkpoint
from tests.helpers.configs import SYNTH, compose_cfg


def test_a_negative_count_is_refused_naming_the_key():
    with pytest.raises(ValueError, match="recompute_bn_batches=-1"):
        EMAWeights(recompute_bn_batches=-1)


EMA = ["callbacks=[default,ema]", "callbacks.rich_progress_bar=null", "callbacks.ema.decay=0.9", "validate_best=false", "trainer.max_epochs=2"]


def _train_with_ema(tmp_path, overrides):
    """``(last checkpoint, EMAWeights callback, the system)`` of a 2-epoch run of the tiny model."""
    cfg = compose_cfg("train", tmp_path, [*SYNTH, *EMA, *overrides])
    _, objects = train(cfg)
    callback = next(c for c in objects["trainer"].callbacks if isinstance(c, EMAWeights))
    return load_checkpoint(f"{cfg.paths.output_dir}/checkpoints/last.ckpt"), callback, objects["model"]


def _statistics_fit_the_weights(system, state_dict, inputs) -> bool:
    """Whether the batch-norm statistics in ``state_dict`` are those its weights give on ``inputs``."""
    system = copy.deepcopy(system)
    system.load_state_dict(state_dict)
    norms = [k for k in state_dict if k.endswith(("running_mean", "running_var"))]
    assert norms, "the test model needs batch norm"
    assert recompute_batch_norm(system, inputs)
    fresh = system.state_dict()
    return all(torch.allclose(fresh[k], state_dict[k], atol=1e-5) for k in norms)


def test_the_checkpointed_average_carries_statistics_recomputed_for_its_weights(tmp_path):
    last, callback, system = _train_with_ema(tmp_path / "on", [])
    inputs = callback._recent_inputs
    assert 0 < len(inputs) <= callback.recompute_bn_batches
    assert _statistics_fit_the_weights(system, last["state_dict"], inputs)
    # The raw weights travel with their own running statistics, untouched.
    assert not _statistics_fit_the_weights(system, last["current_model_state"], inputs)
    # Lightning's averaged statistics (recompute off) do not fit the averaged weights.
    last_off, callback_off, _ = _train_with_ema(tmp_path / "off", ["callbacks.ema.recompute_bn_batches=0"])
    assert callback_off._recent_inputs == []
    # Recomputing draws no random numbers and trains nothing: the raw weights of both runs are identical.
    raw, raw_off = last["current_model_state"], last_off["current_model_state"]
    assert all(torch.equal(raw[k], raw_off[k]) for k in raw)
    assert not _statistics_fit_the_weights(system, last_off["state_dict"], inputs)
