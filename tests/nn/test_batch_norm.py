"""`recompute_batch_norm`: running statistics recomputed for a module's current weights."""

from __future__ import annotations

import copy

import torch
from torch import nn

from tconvseg.nn import recompute_batch_norm


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
