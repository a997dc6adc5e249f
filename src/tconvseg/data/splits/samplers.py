"""Samplers of the datamodule's loaders: an epoch-seeded training shuffle and a padding-free
evaluation shard, both aware of the DDP rank."""

from __future__ import annotations

import math
import random
from collections.abc import Iterator
from typing import Any

import numpy as np
import torch
from torch.utils.data import Sampler


def trainer_shard(trainer: Any | None) -> tuple[int, int]:
    """``(world size, global rank)`` of ``trainer`` (``(1, 0)`` without one); the loaders shard the splits themselves.

    Raises:
        ValueError: DDP with ``use_distributed_sampler=true``, which would replace these samplers.
    """
    if trainer is None or trainer.world_size == 1:
        return 1, 0
    # Lightning's replacement would pad evaluation splits with duplicates and wrap the training
    # sampler without calling its set_epoch; the trainer/ddp*.yaml options switch it off.
    if trainer._accelerator_connector.use_distributed_sampler:
        raise ValueError(
            "trainer.use_distributed_sampler=true under DDP: Lightning would replace this datamodule's samplers "
            "(padding evaluation splits with duplicates that distort the metrics). Expected "
            "trainer.use_distributed_sampler=false, as in trainer=ddp and trainer=ddp_cpu: the datamodule shards by rank itself."
        )
    return trainer.world_size, trainer.global_rank


def epoch_seed(seed: int, epoch: int) -> int:
    """A seed for ``epoch`` of a run seeded with ``seed``: distinct per epoch, in numpy's range."""
    return (seed * 1_000_003 + epoch * 7_919 + 1) % 2**32


class EpochShuffleSampler(Sampler[int]):
    """The training order: a random permutation that depends only on ``(seed, epoch)``.

    Starting an epoch's iteration also seeds the main process's torch / numpy / ``random`` RNGs
    from ``(seed, epoch)``. Augmentations drawn in the main process and any randomness in the model
    then depend on the epoch number alone, not on how many epochs this process has run, so a run
    resumed from an end-of-epoch checkpoint continues exactly as the uninterrupted run would. This
    lives here, not in an ``on_train_epoch_start`` hook, because Lightning fetches the first batch
    of a fit call before that hook runs.

    The generator is shared with the `DataLoader`, which draws its worker base seed from it,
    so non-persistent workers are seeded per epoch as well. Lightning calls `set_epoch`
    before each epoch; ``epoch`` is the first epoch (``trainer.current_epoch`` when resuming).

    Under DDP, every rank draws the same permutation, repeats its head to a multiple of
    ``num_replicas`` (every rank needs as many steps) and takes every ``num_replicas``-th index from
    ``rank`` on; ranks other than 0 then reseed with ``seed + rank``, so they augment differently.
    """

    def __init__(
        self, num_items: int, seed: int, generator: torch.Generator, epoch: int = 0, seed_globals: bool = True,
        num_replicas: int = 1, rank: int = 0,
    ) -> None:
        if not 0 <= rank < num_replicas:
            raise ValueError(f"rank={rank} is invalid for num_replicas={num_replicas}; expected 0 <= rank < num_replicas")
        self.num_items = num_items
        self.seed = seed
        self.generator = generator
        self.seed_globals = seed_globals
        self.num_replicas, self.rank = num_replicas, rank
        self.set_epoch(epoch)

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch
        self.generator.manual_seed(epoch_seed(self.seed, epoch))

    def __len__(self) -> int:
        return math.ceil(self.num_items / self.num_replicas)

    def __iter__(self) -> Iterator[int]:
        value = epoch_seed(self.seed, self.epoch)
        self.generator.manual_seed(value)
        order = torch.randperm(self.num_items, generator=self.generator).tolist()
        if self.num_replicas > 1:
            padded = (order * self.num_replicas)[: len(self) * self.num_replicas] if order else []
            order = padded[self.rank :: self.num_replicas]
        if self.rank:
            value = epoch_seed(self.seed + self.rank, self.epoch)
            self.generator.manual_seed(value)
        if self.seed_globals:
            torch.manual_seed(value)
            np.random.seed(value)
            random.seed(value)
        return iter(order)


class ShardSampler(Sampler[int]):
    """Evaluation order under DDP: rank ``r`` of ``n`` takes items ``r, r + n, r + 2n, ...``, in order.

    Unlike `torch.utils.data.DistributedSampler` nothing is padded, so every item is scored
    exactly once and metrics reduced over the ranks equal the single-process ones; ranks may differ
    by one item (evaluation has no per-step collectives, so that is fine).
    """

    def __init__(self, num_items: int, num_replicas: int, rank: int) -> None:
        if not 0 <= rank < num_replicas:
            raise ValueError(f"rank={rank} is invalid for num_replicas={num_replicas}; expected 0 <= rank < num_replicas")
        self.indices = range(rank, num_items, num_replicas)

    def __len__(self) -> int:
        return len(self.indices)

    def __iter__(self) -> Iterator[int]:
        return iter(self.indices)
