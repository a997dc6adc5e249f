"""`recompute_batch_norm`: running statistics recomputed for a module's current weights."""

from __future__ import annotations

import copy

import pytest
import torch
from torch import nn

from tconvseg.nn import FrozenStatisticsBatchNorm2d, efficientnet_lite_encoder, freeze_batch_norm_statistics, recompute_batch_norm


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


def test_frozen_statistics_normalise_with_the_running_ones_in_training_and_never_change():
    net = _net()
    net[1].running_mean.fill_(0.5)
    net[1].running_var.fill_(4.0)
    reference = copy.deepcopy(net).eval()
    assert freeze_batch_norm_statistics(net) == 1 and isinstance(net[1], FrozenStatisticsBatchNorm2d)
    net.train()
    net[2].p = 0.0  # no dropout: the outputs compare exactly with eval mode's
    reference[2].p = 0.0
    x = torch.randn(4, 3, 6, 7) * 3 + 1
    out = net(x)
    torch.testing.assert_close(out, reference(x))
    torch.testing.assert_close(net[1].running_mean, torch.full((4,), 0.5))
    torch.testing.assert_close(net[1].running_var, torch.full((4,), 4.0))
    out.sum().backward()  # the affine parameters still learn
    assert net[1].weight.grad is not None and net[1].weight.grad.abs().sum() > 0
    # Recomputing statistics leaves frozen layers alone (a reset would have set them to 0 / 1).
    assert not recompute_batch_norm(net, [x])
    torch.testing.assert_close(net[1].running_var, torch.full((4,), 4.0))
    # Same state dict keys, so a checkpoint loads into either class.
    assert net.state_dict().keys() == reference.state_dict().keys()
    reference.load_state_dict(net.state_dict())


def test_a_batch_norm_without_statistics_is_refused_by_name():
    with pytest.raises(ValueError, match=r"BatchNorm2d\(4\) has no running statistics"):
        freeze_batch_norm_statistics(nn.Sequential(nn.BatchNorm2d(4, track_running_stats=False)))


@pytest.mark.parametrize("size", [(33, 47), (1, 1)])
def test_an_efficientnet_lite_encoder_with_frozen_statistics_keeps_them_in_training(size):
    encoder = efficientnet_lite_encoder("efficientnet_lite0", bn_frozen=True, stochastic_depth=0.0)
    norms = [m for m in encoder.modules() if isinstance(m, nn.BatchNorm2d)]
    assert norms and all(isinstance(m, FrozenStatisticsBatchNorm2d) for m in norms)
    before = copy.deepcopy(encoder.state_dict())
    encoder.train()
    features = encoder(torch.randn(2, 3, *size))
    assert [f.shape[-2:] for f in features][0] == torch.Size([-(-size[0] // 2), -(-size[1] // 2)])
    assert all(torch.equal(before[k], v) for k, v in encoder.state_dict().items())
    plain = efficientnet_lite_encoder("efficientnet_lite0")
    assert not any(isinstance(m, FrozenStatisticsBatchNorm2d) for m in plain.modules())
