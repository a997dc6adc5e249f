"""AuxHeads: scores from intermediate stages, each restored to the input size by one matched tconv."""

from __future__ import annotations

import pytest
import torch

from tconvseg.nn import AuxHeads, plain_conv_encoder, torchvision_encoder
from tconvseg.nn.decoders.aux import normalise_stages

STAGES = [{"channels": 6}, {"channels": 8, "kernel": 5, "stride": 3}, {"channels": 10}]


@pytest.mark.parametrize("size", [(97, 131), (20, 7)])
def test_every_head_returns_logits_at_the_input_size(size):
    enc = plain_conv_encoder(STAGES)
    heads = AuxHeads(enc.out_channels, enc.steps, [-1, 0, 1], 4)
    x = torch.randn(1, 3, *size)
    out = heads(enc(x), size)
    assert [o.shape for o in out] == [(1, 4, *size)] * 3
    sum(o.mean() for o in out).backward()
    assert all(p.grad is not None for p in heads.parameters())


def test_each_head_undoes_the_encoder_up_to_its_stage():
    enc = torchvision_encoder("resnet18")
    heads = AuxHeads(enc.out_channels, enc.steps, [-2, 2], 11)
    assert heads.stages == [3, 2]
    assert [up.step for up in heads.ups] == [enc.step_between(-1, 3), enc.step_between(-1, 2)]
    assert [s.in_channels for s in heads.scores] == [256, 128]
    assert str(heads.ups[1].step) == "k19 s8 p9"


def test_fixed_bilinear_heads_do_not_learn_their_upsampling():
    enc = plain_conv_encoder(STAGES)
    heads = AuxHeads(enc.out_channels, enc.steps, [1], 2, upsample_init="bilinear", upsample_trainable=False)
    assert not heads.ups[0].weight.requires_grad and heads.scores[0].weight.requires_grad


@pytest.mark.parametrize(
    ("stages", "match"),
    [([3], "aux stage 3 is out of range for an encoder with 3 stages"), ([-4], "aux stage -4"),
     ([1, -2], r"aux stages \[1, -2\] name a stage twice")],
)
def test_bad_stages_are_named(stages, match):
    with pytest.raises(ValueError, match=match):
        normalise_stages(stages, 3)


def test_no_stages_no_heads():
    assert normalise_stages([], 5) == []
