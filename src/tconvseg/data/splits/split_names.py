"""The ``data.splits`` map checked: the train role may name several splits, every other role one."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

DEFAULT_SPLITS = {"train": "train", "val": "val", "test": "test", "predict": "test"}


def split_map(splits: Mapping[str, Any] | None) -> tuple[dict[str, str], list[str]]:
    """``(role -> split name, the train role's split names)`` from ``data.splits`` overrides over `DEFAULT_SPLITS`.

    The train role may list several splits (``["train", "val"]``): training then runs on all their items, in
    that order, and the map names that role ``"train+val"``.
    """
    unknown = sorted(set(splits or {}) - set(DEFAULT_SPLITS))
    if unknown:
        raise ValueError(f"unknown splits key(s) {unknown}; expected some of {sorted(DEFAULT_SPLITS)}")
    merged = {**DEFAULT_SPLITS, **dict(splits or {})}
    names = train_split_names(merged)
    return {**merged, "train": "+".join(names)}, names


def train_split_names(splits: Mapping[str, Any]) -> list[str]:
    """The split names of the train role (one or several); every other role names exactly one split."""
    for role, value in splits.items():
        if role != "train" and not isinstance(value, str):
            raise ValueError(f"data.splits.{role}={value!r} is invalid; expected one split name (only data.splits.train may list several)")
    value = splits["train"]
    names = [value] if isinstance(value, str) else list(value) if isinstance(value, (list, tuple)) else None
    if not names or not all(isinstance(n, str) and n for n in names) or len(set(names)) != len(names):
        raise ValueError(f"data.splits.train={value!r} is invalid; expected a split name or a list of distinct split names, e.g. [train, val]")
    return names


def check_train_splits_match_pool(train_splits: list[str], pool: list[str], holdout: str) -> None:
    """Under a holdout the training items are the pool without the held-out groups: a train split list must be the pool."""
    if len(train_splits) > 1 and train_splits != pool:
        raise ValueError(
            f"data.splits.train={train_splits} and data.holdout_pool={pool} differ: under data.holdout={holdout} the "
            f"training items are the pool without the held-out groups; expected the same list in both (or one split in "
            f"data.splits.train)"
        )


def check_train_excludes_held_out(train_splits: list[str], pool: list[str] | None, holdout: str | None) -> None:
    """Refuse a train role that would hold held-out items: the split ``holdout`` itself, or under a holdout a
    split outside the pool (the training items are always the pool without the held-out groups).

    Raises:
        ValueError: naming ``data.splits.train`` and what was expected.
    """
    if "holdout" in train_splits:
        where = f"the held-out groups of data.holdout={holdout}" if holdout else "a split that exists only under data.holdout"
        raise ValueError(
            f"data.splits.train={_shown(train_splits)} names 'holdout', {where}: a model trained on them would be scored on frames "
            f"it trained on. Expected data.splits.train to name the splits to train on (e.g. train); under data.holdout the "
            f"training items are the pool data.holdout_pool without the held-out groups"
        )
    if holdout is None or pool is None or len(train_splits) > 1:  # a list must be the pool: check_train_splits_match_pool
        return
    outside = [name for name in train_splits if name not in pool]
    if outside:
        raise ValueError(
            f"data.splits.train={_shown(train_splits)} names {outside}, which data.holdout_pool={pool} does not hold: under "
            f"data.holdout={holdout} the training items are the pool without the held-out groups, whatever the train split is "
            f"called, and a split outside the pool may hold items of the held-out groups. Expected one split of the pool "
            f"(e.g. data.splits.train={pool[0]}) or the pool's list"
        )


def _shown(names: list[str]) -> str:
    return names[0] if len(names) == 1 else "[" + ",".join(names) + "]"
