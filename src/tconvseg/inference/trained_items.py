"""Which items a checkpoint's run trained on, read from its stored run record: what eval's ``trained_on_split`` is computed from.

A score is a held-out score only if none of the scored items was trained on. Evaluation compares the
``(split, name)`` of every scored item (`tconvseg.data.splits.pooled.item_sources`) with the items the run
trained on, rebuilt here from the checkpoint: never from the split's name alone.
"""

from __future__ import annotations

from collections.abc import Callable

from tconvseg.data import SegmentationDataset
from tconvseg.training.run_record import RunRecord

#: How the training items of checkpoints that store no train split list are read (written before 2026-12-07).
ASSUMED_TRAIN = "assumed data.splits.train=train (this checkpoint predates the stored train split list)"


def trained_items(
    record: RunRecord | None, whole_split: Callable[[str], SegmentationDataset], only: set[str] | None = None
) -> tuple[set[tuple[str, str]] | None, str]:
    """``((split, name) of every item the run trained on, how that was found)``; ``(None, why)`` without a run record.

    Under a holdout: every item of the pool's splits but the held-out ones (the stored manifest's
    ``splits.val_items``; the items of the held-out groups when no manifest is stored). Otherwise every item of the
    run's training splits (``train_splits``; ``data.train_splits`` or, with neither stored, ``train``).

    Args:
        record: the checkpoint's run record (`tconvseg.training.run_record.RunRecord.from_checkpoint`).
        whole_split: builds every item of a named split (`tconvseg.data.SegmentationDataModule.whole_split`).
        only: the splits worth reading (those the scored items come from); others are not built, their items are left out.
    """
    if record is None:
        return None, "the checkpoint stores no run record"
    holdout = record.holdout
    if holdout is not None:
        manifest = record.splits or {}
        held_names = set(manifest["val_items"]) if "val_items" in manifest else None
        held_groups = set(holdout["held_out"])
        items: set[tuple[str, str]] = set()
        for split in holdout["pool"]:
            if only is not None and split not in only:
                continue
            ds = whole_split(split)
            groups = ds.groups() if held_names is None else [None] * len(ds)
            for name, group in zip(ds.names(), groups):
                if (name not in held_names) if held_names is not None else (group not in held_groups):
                    items.add((split, name))
        basis = "the stored split manifest" if held_names is not None else "the stored held-out groups"
        return items, f"{basis} (pool {holdout['pool']}, held out {holdout['held_out']})"
    splits = record.stored_train_splits
    basis = f"the stored training splits {splits}" if splits else ASSUMED_TRAIN
    splits = splits or ["train"]
    return {(split, name) for split in splits if only is None or split in only for name in whole_split(split).names()}, basis
