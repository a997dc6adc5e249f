"""Rank-aware samplers: evaluation shards without duplicates, an epoch-seeded training shuffle split
by rank; the datamodule shards under DDP, downloads in prepare_data only."""

from __future__ import annotations

import functools
from types import SimpleNamespace

import pytest
import torch

from tconvseg.data import SegmentationDataModule, synthetic_info, synthetic_split
from tconvseg.data.splits.samplers import EpochShuffleSampler, ShardSampler, epoch_seed


@pytest.mark.parametrize(("n", "replicas"), [(15, 2), (16, 2), (7, 3), (1, 2), (0, 2)])
def test_eval_shards_cover_the_split_once(n, replicas):
    shards = [list(ShardSampler(n, replicas, rank)) for rank in range(replicas)]
    flat = [i for shard in shards for i in shard]
    assert sorted(flat) == list(range(n))  # every item exactly once: nothing padded
    assert [len(ShardSampler(n, replicas, r)) for r in range(replicas)] == [len(s) for s in shards]
    assert max(map(len, shards)) - min(map(len, shards)) <= 1


def test_training_shards_split_one_epoch_permutation():
    whole = list(EpochShuffleSampler(15, seed=3, generator=torch.Generator(), epoch=2, seed_globals=False))
    shards = [list(EpochShuffleSampler(15, 3, torch.Generator(), epoch=2, seed_globals=False, num_replicas=2, rank=r)) for r in (0, 1)]
    assert whole == torch.randperm(15, generator=torch.Generator().manual_seed(epoch_seed(3, 2))).tolist()
    assert [len(s) for s in shards] == [8, 8]  # equal step counts: one item repeated
    interleaved = [i for pair in zip(*shards) for i in pair]
    assert interleaved == (whole + whole)[:16]
    other_epoch = [list(EpochShuffleSampler(15, 3, torch.Generator(), epoch=3, seed_globals=False, num_replicas=2, rank=r)) for r in (0, 1)]
    assert other_epoch != shards


def test_ranks_reseed_their_augmentations_differently():
    drawn = []
    for rank in (0, 1):
        sampler = EpochShuffleSampler(8, seed=5, generator=torch.Generator(), epoch=1, num_replicas=2, rank=rank)
        iter(sampler)
        drawn.append(torch.rand(3))
    assert not torch.equal(drawn[0], drawn[1])
    single = EpochShuffleSampler(8, seed=5, generator=torch.Generator(), epoch=1)
    iter(single)
    assert torch.equal(torch.rand(3), drawn[0])  # rank 0 draws what a single process draws


def test_bad_rank_is_refused():
    with pytest.raises(ValueError, match=r"rank=2 is invalid for num_replicas=2"):
        ShardSampler(4, 2, 2)


def _datamodule(**kwargs) -> SegmentationDataModule:
    dataset = functools.partial(synthetic_split, num_samples={"train": 15, "val": 15, "test": 15}, size=(8, 8))
    return SegmentationDataModule(dataset, synthetic_info(4), batch_size=4, **kwargs)


def _fake_trainer(rank: int, use_distributed_sampler: bool = False) -> SimpleNamespace:
    return SimpleNamespace(world_size=2, global_rank=rank, current_epoch=0,
                           _accelerator_connector=SimpleNamespace(use_distributed_sampler=use_distributed_sampler))


def test_datamodule_loaders_shard_by_rank():
    seen = {"train": [], "val": []}
    for rank in (0, 1):
        dm = _datamodule(seed=1)
        dm.trainer = _fake_trainer(rank)
        seen["train"].append(list(dm.train_dataloader().sampler))
        seen["val"].append(list(dm.val_dataloader().sampler))
    assert sorted(seen["val"][0] + seen["val"][1]) == list(range(15))
    assert len(seen["train"][0]) == len(seen["train"][1]) == 8 and set(seen["train"][0] + seen["train"][1]) == set(range(15))


def test_lightning_sampler_replacement_under_ddp_is_refused():
    dm = _datamodule()
    dm.trainer = _fake_trainer(0, use_distributed_sampler=True)
    with pytest.raises(ValueError, match=r"trainer.use_distributed_sampler=true under DDP.*Expected trainer.use_distributed_sampler=false"):
        dm.val_dataloader()


def _recording(calls: list, split: str, transforms=None, download: bool = False):
    calls.append((split, download))
    return synthetic_split(split, transforms, num_samples=4, size=(8, 8))


def test_prepare_data_downloads_and_setup_does_not():
    calls: list = []
    factory = functools.partial(_recording, calls, download=True)  # the config asks for a download
    other_rank = SegmentationDataModule(factory, synthetic_info(4))
    other_rank.setup("fit")
    assert calls == [("train", False), ("val", False)]
    calls.clear()
    local_zero = SegmentationDataModule(factory, synthetic_info(4))
    local_zero.prepare_data()  # no trainer: the fit splits
    local_zero.setup("fit")  # reuses what prepare_data built
    assert calls == [("train", True), ("val", True)]
