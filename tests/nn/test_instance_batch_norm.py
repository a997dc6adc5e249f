"""Instance-batch normalisation (IBN-Net's IBN-a): the layer, its placement in encoders, the option."""

from __future__ import annotations

import pytest
import torch
from torch import nn
from torchvision.models.mobilenetv3 import InvertedResidual
from torchvision.models.resnet import BasicBlock

from tconvseg.nn import FCN, InstanceBatchNorm2d, add_instance_batch_norm, torchvision_encoder


def _trained_like_bn(channels: int) -> nn.BatchNorm2d:
    torch.manual_seed(0)
    bn = nn.BatchNorm2d(channels, eps=1e-3, momentum=0.01)
    with torch.no_grad():
        bn.weight.uniform_(0.5, 2.0)
        bn.bias.uniform_(-1.0, 1.0)
        bn.running_mean.uniform_(-1.0, 1.0)
        bn.running_var.uniform_(0.5, 2.0)
        bn.num_batches_tracked.fill_(7)
    return bn


@pytest.mark.parametrize("channels_last", [False, True])
def test_the_first_half_is_normalised_per_image_the_rest_as_the_batch_norm_did(channels_last: bool):
    bn = _trained_like_bn(6)
    ibn = InstanceBatchNorm2d(bn)
    x = torch.randn(4, 6, 5, 7) * 3 + 2
    if channels_last:
        x = x.contiguous(memory_format=torch.channels_last)
    for training in (True, False):
        bn.train(training)
        ibn.train(training)
        expected_tail = bn(x.clone())[:, 3:]
        out = ibn(x)
        assert out.shape == x.shape
        assert out.is_contiguous(memory_format=torch.channels_last) == channels_last
        torch.testing.assert_close(out[:, 3:], expected_tail)
        # The instance half: each image's channel has mean `bias` and std `weight` (its copied affine).
        head = out[:, :3]
        torch.testing.assert_close(head.mean(dim=(2, 3)), bn.bias[:3].detach().expand(4, 3), atol=1e-5, rtol=0)
        std = head.var(dim=(2, 3), unbiased=False).sqrt()
        torch.testing.assert_close(std, bn.weight[:3].detach().expand(4, 3), atol=1e-3, rtol=1e-3)
    # The batch half's running statistics moved exactly as the original layer's did.
    torch.testing.assert_close(ibn.batch.running_mean, bn.running_mean[3:])
    torch.testing.assert_close(ibn.batch.running_var, bn.running_var[3:])


def test_an_image_s_instance_half_does_not_depend_on_the_other_images_in_the_batch():
    ibn = InstanceBatchNorm2d(_trained_like_bn(8)).train()
    x = torch.randn(3, 8, 6, 6)
    y = x.clone()
    y[1:] = torch.randn(2, 8, 6, 6) * 10 + 5  # other images, other light
    torch.testing.assert_close(ibn(x)[0, :4], ibn(y)[0, :4])
    assert not torch.allclose(ibn(x)[0, 4:], ibn(y)[0, 4:])  # the batch half does depend on them


def test_brightness_and_contrast_of_an_image_leave_the_instance_half_unchanged():
    ibn = InstanceBatchNorm2d(nn.BatchNorm2d(4, eps=1e-6)).eval()  # eps aside, the statistics cancel exactly
    x = torch.randn(2, 4, 9, 9)
    torch.testing.assert_close(ibn(x * 2.5 + 3.0)[:, :2], ibn(x)[:, :2], atol=1e-4, rtol=1e-4)


@pytest.mark.parametrize(("channels", "ratio"), [(1, 0.5), (4, 0.0), (4, 1.0), (3, 0.2)])
def test_a_split_that_leaves_a_part_empty_is_refused_by_name(channels: int, ratio: float):
    with pytest.raises(ValueError, match="instance_ratio"):
        InstanceBatchNorm2d(nn.BatchNorm2d(channels), ratio)


@pytest.mark.parametrize("training", [True, False])
def test_a_one_pixel_map_is_explained(training: bool):
    ibn = InstanceBatchNorm2d(nn.BatchNorm2d(4)).train(training)
    with pytest.raises(ValueError, match=r"1x1 feature map.*ibn_stages"):
        ibn(torch.randn(2, 4, 1, 1))


def test_mobilenet_v3_gets_one_per_block_in_the_first_stages_and_none_in_the_deepest():
    encoder = torchvision_encoder("mobilenet_v3_large", ibn_stages=4)
    plain = torchvision_encoder("mobilenet_v3_large")
    per_stage = [sum(isinstance(m, InstanceBatchNorm2d) for m in s.modules()) for s in encoder.stages]
    blocks = [sum(isinstance(m, InvertedResidual) for m in s.modules()) for s in plain.stages]
    assert per_stage[:4] == blocks[:4] and per_stage[4] == 0 and sum(per_stage) == 12
    # The stem's norm stays a batch norm (IBN-a leaves layers outside blocks alone).
    assert type(encoder.stages[0][0][1]) is nn.BatchNorm2d
    # Each replaced norm is the first of its block: the expansion's (or the depthwise conv's) norm.
    for stage in encoder.stages[:4]:
        for block in [m for m in stage.modules() if isinstance(m, InvertedResidual)]:
            norms = [m for m in block.modules() if isinstance(m, (nn.BatchNorm2d, InstanceBatchNorm2d))]
            assert isinstance(norms[0], InstanceBatchNorm2d)
            assert not any(isinstance(n, InstanceBatchNorm2d) for n in norms[2:] if n is not norms[0].batch)
    assert encoder.steps == plain.steps and encoder.out_channels == plain.out_channels
    x = torch.randn(2, 3, 45, 61)
    assert [f.shape for f in encoder(x)] == [f.shape for f in plain(x)]


def test_resnet_blocks_get_it_on_bn1_only():
    encoder = torchvision_encoder("resnet18", ibn_stages=4)
    blocks = [m for m in encoder.modules() if isinstance(m, BasicBlock)]
    assert len(blocks) == 8
    with_ibn = [b for b in blocks if isinstance(b.bn1, InstanceBatchNorm2d)]
    assert len(with_ibn) == 6  # layer1..layer3; layer4 is the deepest stage
    assert all(type(b.bn2) is nn.BatchNorm2d for b in blocks)


@pytest.mark.parametrize("value", [-1, 6, 1.5, True, "2"])
def test_a_bad_stage_count_names_the_value_and_the_range(value: object):
    with pytest.raises(ValueError, match=r"ibn_stages=.*mobilenet_v3_large.*0 to its 5 stages"):
        torchvision_encoder("mobilenet_v3_large", ibn_stages=value)  # type: ignore[arg-type]


def test_an_encoder_without_residual_blocks_is_refused_not_left_unchanged():
    with pytest.raises(ValueError, match=r"ibn_stages=2 for vgg16_bn: .*no residual blocks"):
        torchvision_encoder("vgg16_bn", ibn_stages=2)
    with pytest.raises(ValueError, match="no block"):
        add_instance_batch_norm([nn.Sequential(nn.Conv2d(3, 3, 1), nn.BatchNorm2d(3))], (BasicBlock,))


def test_an_fcn_with_it_trains_and_keeps_the_input_size():
    torch.manual_seed(0)
    net = FCN(torchvision_encoder("mobilenet_v3_large", ibn_stages=4), num_classes=5, topology="8s")
    x, y = torch.randn(2, 3, 67, 93), torch.randint(0, 5, (2, 67, 93))
    opt = torch.optim.SGD(net.parameters(), lr=0.05)
    losses = []
    for _ in range(8):
        loss = nn.functional.cross_entropy(net(x), y)
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    assert losses[-1] < losses[0]
    # Every part of the layer learns: the instance half's affine gets gradients too.
    ibn = next(m for m in net.modules() if isinstance(m, InstanceBatchNorm2d))
    assert ibn.instance.weight.grad is not None and ibn.instance.weight.grad.abs().sum() > 0
    net.eval()
    assert net(x).shape == (2, 5, 67, 93)
