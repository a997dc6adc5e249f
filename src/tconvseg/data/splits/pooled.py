"""A split made of items picked from one or more datasets: the kept and held-out sides of a group holdout."""

from __future__ import annotations

from collections.abc import Sequence

import torch

from tconvseg.data.datasets.base import SegmentationDataset, Transforms
from tconvseg.data.errors import DatasetError


class PooledView(SegmentationDataset):
    """Items picked from one or more datasets, served with this view's own ``transforms``.

    Item ``i`` is ``parts[i][0].load_pair(parts[i][1])`` after ``transforms``, so views over the same
    datasets share their decoded cache. ``names`` / ``groups`` follow the items.

    Args:
        parts: ``(dataset, index)`` per item, in order; every dataset shares one `DatasetInfo`.
        transforms: joint transform applied to the raw pairs.
    """

    def __init__(self, parts: Sequence[tuple[SegmentationDataset, int]], transforms: Transforms | None = None) -> None:
        if not parts:
            raise DatasetError("a pooled split has no items; expected at least one")
        super().__init__(parts[0][0].info, transforms)
        self.parts = list(parts)

    def __len__(self) -> int:
        return len(self.parts)

    def load_pair(self, index: int) -> tuple[torch.Tensor, torch.Tensor]:
        dataset, item = self.parts[index]
        return dataset.load_pair(item)

    def load_label(self, index: int) -> torch.Tensor:
        dataset, item = self.parts[index]
        return dataset.load_label(item)

    def names(self) -> list[str]:
        return self._per_item("names")

    def groups(self) -> list[str]:
        return self._per_item("groups")

    def _per_item(self, method: str) -> list[str]:
        # One call per source dataset: its lists are built from all of its items.
        lists = {id(ds): getattr(ds, method)() for ds, _ in self.parts}
        return [lists[id(ds)][item] for ds, item in self.parts]


def item_sources(dataset: SegmentationDataset) -> list[tuple[str | None, str]]:
    """``(split, name)`` of every item of ``dataset``: the split each item was read from (a pooled view's items
    keep their source's), ``None`` for a dataset the datamodule did not build."""
    parts = dataset.parts if isinstance(dataset, PooledView) else [(dataset, i) for i in range(len(dataset))]
    names = {id(ds): ds.names() for ds, _ in parts}
    return [(getattr(ds, "source_split", None), names[id(ds)][i]) for ds, i in parts]
