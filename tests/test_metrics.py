"""Segmentation metrics: exact values on hand-made cases, and the same result under DDP."""

from __future__ import annotations

import os
import socket

import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp

from tconvseg.training.metrics import SegmentationMetrics


def test_hand_computed_values_and_ignore_index():
    m = SegmentationMetrics(3, ignore_index=255, class_names=["a", "b", "c"])
    target = torch.tensor([[0, 0, 1, 1, 255, 2]])
    preds = torch.tensor([[0, 1, 1, 1, 2, 0]])
    m.update(preds, target)
    s = m.summary()
    # a: tp1 fp1(pos5) fn1 -> 1/3; b: tp2 fp1 fn0 -> 2/3; c: tp0 fp0 fn1 -> 0 (pixel 4 is ignored)
    assert s["IoU/a"] == pytest.approx(1 / 3)
    assert s["IoU/b"] == pytest.approx(2 / 3)
    assert s["IoU/c"] == pytest.approx(0.0)
    assert s["mIoU"] == pytest.approx((1 / 3 + 2 / 3 + 0) / 3)
    assert s["pixel_acc"] == pytest.approx(3 / 5)
    assert s["mean_class_acc"] == pytest.approx((1 / 2 + 1 + 0) / 3)


def test_whole_split_not_mean_of_batches():
    m = SegmentationMetrics(2, ignore_index=255)
    m.update(torch.tensor([[0]]), torch.tensor([[0]]))  # batch IoU of class 0: 1
    m.update(torch.tensor([[0, 0, 0]]), torch.tensor([[1, 1, 0]]))  # batch IoU of class 0: 1/3
    assert m.summary()["IoU/0"] == pytest.approx(2 / 4)


def test_class_absent_everywhere_is_left_out_of_the_mean():
    m = SegmentationMetrics(3, ignore_index=255)
    m.update(torch.tensor([[0, 1]]), torch.tensor([[0, 1]]))
    s = m.summary()
    assert s["mIoU"] == pytest.approx(1.0)
    assert s["IoU/2"] != s["IoU/2"]  # NaN


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _rank_main(rank: int, world: int, port: int, preds: torch.Tensor, target: torch.Tensor, out: dict) -> None:
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    dist.init_process_group("gloo", rank=rank, world_size=world)
    try:
        m = SegmentationMetrics(4, ignore_index=255)
        m.update(preds[rank::world], target[rank::world])  # each rank sees its own shard
        out[rank] = m.summary()
    finally:
        dist.destroy_process_group()


def test_ddp_shards_give_the_single_process_result():
    torch.manual_seed(0)
    target = torch.randint(0, 4, (6, 9, 11))
    target[:, :2] = 255
    preds = torch.where(torch.rand(6, 9, 11) < 0.6, target.clamp(max=3), torch.randint(0, 4, (6, 9, 11)))
    single = SegmentationMetrics(4, ignore_index=255)
    single.update(preds, target)
    expected = single.summary()
    with mp.Manager() as manager:
        out = manager.dict()
        mp.spawn(_rank_main, args=(2, _free_port(), preds, target, out), nprocs=2, join=True)
        results = dict(out)
    local = SegmentationMetrics(4, ignore_index=255)
    local.update(preds[0::2], target[0::2])
    assert local.summary()["mIoU"] != pytest.approx(expected["mIoU"])  # so agreement means a real reduction
    for rank in (0, 1):
        for key, value in expected.items():
            assert results[rank][key] == pytest.approx(value), (rank, key)
