"""EMA weights get batch-norm statistics of their own: `recompute_batch_norm` and `EMAWeights(recompute_bn_batches=...)`."""

from __future__ import annotations

import copy

import pytest
import torch
from torch import nn

from tconvseg.callbacks import EMAWeights
from tconvseg.checkpoints import load_checkpoint
from tconvseg.nn import recompute_batch_norm
from tconvseg.train import train
from tests.helpers.configs import SYNTH, compose_cfg


def _net() -> nn.Sequential:
    torch.manual_seed(0)
    return nn.Sequential(nn.Conv2d(3, 4, 3, padding=1), nn.BatchNorm2d(4), nn.Dropout(0.5), nn.ReLU())


def test_recompute_gives_the_mean_of_the_batches_statistics_and_restores_the_module():
    net = _net()
    batches = [torch.randn(5, 3, 6, 7) * (i + 1) + i for i in range(3)]
    net.train()
    rng = torch.get_rng_state()
    assert recompute_batch_norm(net, batches)
    # Dropout stayed in eval mode: no random numbers were drawn.
    assert torch.equal(torch.get_rng_state(), rng)
    with torch.no_grad():
        feats = [net[0](x) for x in batches]
    means = torch.stack([f.mean(dim=(0, 2, 3)) for f in feats]).mean(0)
    variances = torch.stack([f.transpose(0, 1).flatten(1).var(dim=1, unbiased=True) for f in feats]).mean(0)
    torch.testing.assert_close(net[1].running_mean, means)
    torch.testing.assert_close(net[1].running_var, variances)
    assert net.training and all(m.training for m in net.modules())
    assert net[1].momentum == 0.1


def test_recompute_changes_nothing_without_batch_norm_or_batches():
    net = _net()
    before = copy.deepcopy(net.state_dict())
    assert not recompute_batch_norm(net, [])
    assert not recompute_batch_norm(nn.Conv2d(3, 4, 1), [torch.randn(2, 3, 4, 4)])
    assert all(torch.equal(before[k], v) for k, v in net.state_dict().items())


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
