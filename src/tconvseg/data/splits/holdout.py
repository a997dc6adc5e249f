"""``data.holdout``: pool some splits, hold whole groups (drives, sequences) out of training as the val role.

`HoldoutOptions` is the one value the four config keys travel as; `GroupHoldout`, made by its
`HoldoutOptions.checked`, checks the options once, builds the pool lazily (through the datamodule's split
factory, so the decoded cache is shared by both sides) and serves the kept and held-out sides as
`tconvseg.data.splits.pooled.PooledView` splits.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from tconvseg.data.datasets.base import SegmentationDataset, Transforms
from tconvseg.data.splits.groups import describe_groups, holdout_indices, leave_one_group_out
from tconvseg.data.splits.pooled import PooledView

#: Split name of the held-out groups (the val role's split under a holdout).
HOLDOUT_SPLIT = "holdout"
HOLDOUT_MODES = ("sequence", "kfold")


#: The flat config keys of a holdout (``data.holdout``, ``data.holdout_groups``, ...): what users type on the
#: command line. `HoldoutOptions.from_config` gathers them into one object at the config boundary.
HOLDOUT_KEYS = ("holdout", "holdout_groups", "holdout_fold", "holdout_pool")


@dataclass(frozen=True)
class HoldoutOptions:
    """What to hold out of training, as one value: the options of ``data.holdout`` and its three companions.

    Args:
        mode: ``"sequence"`` (hold out ``groups``), ``"kfold"`` (hold out the ``fold``-th group in sorted
            order) or ``None`` (no holdout).
        groups: group names held out under ``"sequence"``.
        fold: fold index under ``"kfold"``.
        pool: split names whose items are pooled before holding out; ``None``: ``("train", "val")``.

    Not checked on construction (a config may be read before it is complete); `checked` checks.
    """

    mode: str | None = None
    groups: tuple[Any, ...] = ()
    fold: int | None = None
    pool: tuple[str, ...] | None = None

    @classmethod
    def from_config(cls, data: Mapping[str, Any]) -> HoldoutOptions:
        """The options of a ``data`` config (a mapping holding some of `HOLDOUT_KEYS`; missing ones are unset)."""
        groups, pool = data.get("holdout_groups"), data.get("holdout_pool")
        return cls(
            mode=data.get("holdout"),
            groups=(groups,) if isinstance(groups, (str, int, float)) else tuple(groups or ()),
            fold=data.get("holdout_fold"),
            pool=(pool,) if isinstance(pool, str) else (tuple(pool) if pool is not None else None),
        )

    @classmethod
    def sequence(cls, groups: Sequence[str], pool: Sequence[str] | None = None) -> HoldoutOptions:
        """Hold out the named ``groups`` of the ``pool`` splits."""
        return cls("sequence", tuple(groups), None, tuple(pool) if pool is not None else None)

    def to_config(self) -> dict[str, Any]:
        """The flat config keys (`HOLDOUT_KEYS`) that `from_config` reads back to these options."""
        return {
            "holdout": self.mode, "holdout_groups": list(self.groups) or None, "holdout_fold": self.fold,
            "holdout_pool": list(self.pool) if self.pool is not None else ["train", "val"],
        }

    def checked(self) -> GroupHoldout | None:
        """``None`` when ``mode`` is null, else the checked holdout.

        Raises:
            ValueError: options that do not agree, naming the key and what was expected.
        """
        mode, groups, fold, pool = self.mode, list(self.groups), self.fold, self.pool
        if mode in (None, "none", "null"):
            if groups or fold is not None:
                raise ValueError(
                    f"data.holdout_groups={groups!r} / data.holdout_fold={fold!r} are set but data.holdout is null; expected "
                    f"data.holdout=sequence (with holdout_groups) or data.holdout=kfold (with holdout_fold)"
                )
            return None
        if mode not in HOLDOUT_MODES:
            raise ValueError(f"data.holdout={mode!r} is invalid; expected null, {' or '.join(HOLDOUT_MODES)}")
        if mode == "sequence" and not groups:
            raise ValueError(f"data.holdout=sequence needs data.holdout_groups, a list of group names such as [0006R0]; got {groups or None!r}")
        for group in groups:
            if isinstance(group, float):  # YAML 1.1 and OmegaConf read 0016E5 as 16e5
                raise ValueError(
                    f"data.holdout_groups holds the number {group!r}, not a group name: an unquoted name such as 0016E5 reads as a "
                    f"number in YAML. Expected quoted names in config files, e.g. holdout_groups: ['0016E5']"
                )
        if mode == "sequence" and fold is not None:
            raise ValueError(f"data.holdout_fold={fold!r} applies to data.holdout=kfold, not sequence; expected it null")
        if mode == "kfold" and fold is None:
            raise ValueError("data.holdout=kfold needs data.holdout_fold, the index of the group to hold out (0, 1, ...)")
        if mode == "kfold" and groups:
            raise ValueError(f"data.holdout_groups={groups!r} applies to data.holdout=sequence, not kfold; expected it empty")
        return GroupHoldout(mode, groups, fold, pool)


class GroupHoldout:
    """The options of ``data.holdout``, checked, and the split they make.

    Args:
        mode: ``"sequence"`` (hold out ``groups``) or ``"kfold"`` (hold out the ``fold``-th group in sorted order).
        groups: group names held out under ``"sequence"``.
        fold: fold index under ``"kfold"``.
        pool: split names whose items are pooled before holding out; default ``["train", "val"]``.

    Raises:
        ValueError: options that do not agree, naming the key and what was expected.
    """

    def __init__(self, mode: str, groups: Sequence[str] | None = None, fold: int | None = None, pool: Sequence[str] | None = None) -> None:
        self.mode = mode
        self.groups = [str(g) for g in groups] if groups else []
        self.fold = fold
        self.pool = list(pool) if pool is not None else ["train", "val"]
        if not self.pool or HOLDOUT_SPLIT in self.pool:
            typed = list(pool) if pool is not None else None
            raise ValueError(f"data.holdout_pool={typed!r} is invalid; expected a non-empty list of split names such as [train, val]")
        self._datasets: list[SegmentationDataset] | None = None
        self._split: tuple[list[int], list[int], list[str]] | None = None

    def split(self, build: Callable[[str], SegmentationDataset]) -> tuple[list[int], list[int], list[str]]:
        """``(kept, held_out, held_out_groups)``: indices into the pool; ``build(name)`` makes a pool split once.

        Raises:
            ValueError: an unknown group (naming those that exist), a bad fold, every group held out.
            DatasetError: the dataset has no groups.
        """
        if self._split is None:
            self._datasets = [build(name) for name in self.pool]
            groups = self._pooled("groups")
            where = f"the pooled splits {self.pool}"
            if self.mode == "kfold":
                wanted = [leave_one_group_out(groups, self.fold, where)]  # type: ignore[arg-type]
            else:
                wanted = list(dict.fromkeys(self.groups))
            kept, held = holdout_indices(groups, wanted, where)
            self._split = (kept, held, wanted)
        return self._split

    def view(self, held_out: bool, transforms: Transforms | None, build: Callable[[str], SegmentationDataset]) -> PooledView:
        """The held-out side (``held_out=True``) or the kept side of the pool, served with ``transforms``."""
        kept, held, _ = self.split(build)
        items = [(ds, i) for ds in self._datasets or [] for i in range(len(ds))]
        return PooledView([items[i] for i in (held if held_out else kept)], transforms)

    def identity(self, build: Callable[[str], SegmentationDataset]) -> dict[str, Any]:
        """What makes two runs' splits differ: mode, pool and the held-out groups."""
        return {"mode": self.mode, "pool": list(self.pool), "held_out": self.split(build)[2]}

    def manifest(self, build: Callable[[str], SegmentationDataset]) -> dict[str, Any]:
        """`identity` plus per-group counts of both sides and every held-out item's name."""
        kept, held, _ = self.split(build)
        names, groups = self._pooled("names"), self._pooled("groups")
        return {
            **self.identity(build),
            "train_groups": describe_groups([groups[i] for i in kept]),
            "val_groups": describe_groups([groups[i] for i in held]),
            "val_items": [names[i] for i in held],
        }

    def _pooled(self, method: str) -> list[str]:
        return [value for ds in self._datasets or [] for value in getattr(ds, method)()]
