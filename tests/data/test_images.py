"""Prediction inputs: batches of one image size, every index once."""

from __future__ import annotations

import pytest

from tconvseg.data.datasets.images import SameSizeBatchSampler


def test_batches_hold_one_size_and_every_index_once():
    sizes = [(5, 7), (9, 9), (5, 7), (5, 7), (9, 9), (3, 4)]
    batches = list(SameSizeBatchSampler(sizes, batch_size=2))
    assert batches == [[0, 2], [3], [1, 4], [5]]
    assert len(SameSizeBatchSampler(sizes, batch_size=2)) == 4


def test_batch_size_must_be_positive():
    with pytest.raises(ValueError, match="batch_size=0 is invalid"):
        SameSizeBatchSampler([(1, 1)], batch_size=0)
