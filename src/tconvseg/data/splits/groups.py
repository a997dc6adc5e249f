"""Groups of items (the drive / sequence a frame comes from) and splits that hold whole groups out.

Frames of one drive look alike: a model scored on frames of a drive it trained on measures how well it
remembers that street, not how it does on a new one. The helpers here read each item's group from its
file name and build train / held-out index lists that never share a group.

``SegmentationDataset.groups()`` gives one group name per item; `holdout_indices` turns a list of
held-out group names into ``(kept, held_out)`` indices, `leave_one_group_out` names the group of one
fold; `tconvseg.data.splits.pooled.PooledView` serves the resulting subsets.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Sequence

from tconvseg.data.errors import DatasetError

#: CamVid's file names start with their drive: ``0001TP_006690.png``, ``Seq05VD_f00000.png``.
CAMVID_GROUP_PATTERN = r"^([^_]+)_"


def group_of(name: str, pattern: str) -> str:
    """The group of an item named ``name`` (a file stem): the first capture group of ``pattern``, else the match.

    Raises:
        DatasetError: ``pattern`` does not match ``name``, naming both.
    """
    match = re.search(pattern, name)
    if match is None:
        raise DatasetError(
            f"item {name!r}: its name does not match the group pattern {pattern!r}; expected every file name to carry "
            f"its group (e.g. the drive in CamVid's '0001TP_006690'). Set data.dataset.group_pattern to a regex whose "
            f"first group is the sequence name."
        )
    return match.group(1) if match.groups() else match.group(0)


def check_pattern(pattern: str | None, key: str = "data.dataset.group_pattern") -> None:
    """Raise a one-line ``ValueError`` naming ``key`` when ``pattern`` is not a valid regex."""
    if pattern is None:
        return
    try:
        re.compile(pattern)
    except (re.error, TypeError) as err:
        raise ValueError(f"{key}={pattern!r} is not a valid regular expression ({err}); expected e.g. '^([^_]+)_'") from None


def describe_groups(groups: Sequence[str]) -> str:
    """``"0001TP (62), 0006R0 (101)"``: each group with its item count, sorted by name."""
    counts = Counter(groups)
    return ", ".join(f"{g} ({counts[g]})" for g in sorted(counts))


def holdout_indices(groups: Sequence[str], held_out: Sequence[str], where: str = "the pooled splits") -> tuple[list[int], list[int]]:
    """Split item indices by group: ``(kept, held_out)``, in index order, no group on both sides.

    Args:
        groups: the group of each item.
        held_out: group names to hold out (at least one).
        where: what ``groups`` come from, for messages.

    Raises:
        ValueError: ``held_out`` is empty, names a group that does not exist (the message lists those that
            do), or holds out every group (nothing left to train on).
    """
    wanted = list(dict.fromkeys(str(g) for g in held_out))
    if not wanted:
        raise ValueError(f"data.holdout_groups is empty; expected at least one of the groups in {where}: {describe_groups(groups)}")
    known = set(groups)
    unknown = [g for g in wanted if g not in known]
    if unknown:
        raise ValueError(
            f"data.holdout_groups names {unknown}, which {where} do not contain; expected some of the groups that exist: "
            f"{describe_groups(groups)}"
        )
    held = set(wanted)
    kept = [i for i, g in enumerate(groups) if g not in held]
    out = [i for i, g in enumerate(groups) if g in held]
    if not kept:
        raise ValueError(f"data.holdout_groups={wanted} holds out every group of {where}; expected at least one group left to train on")
    return kept, out


def leave_one_group_out(groups: Sequence[str], fold: int, where: str = "the pooled splits") -> str:
    """The group held out in fold ``fold`` of leave-one-group-out: the ``fold``-th group in sorted order.

    Raises:
        ValueError: ``fold`` is outside ``0..G-1``, naming the folds and their groups.
    """
    names = sorted(set(groups))
    if isinstance(fold, bool) or not isinstance(fold, int) or not 0 <= fold < len(names):
        folds = ", ".join(f"{i}={g}" for i, g in enumerate(names))
        raise ValueError(f"data.holdout_fold={fold!r} is invalid; expected one of the {len(names)} folds of {where}: {folds}")
    if len(names) < 2:
        raise ValueError(f"leave-one-group-out needs at least two groups; {where} hold only {names}")
    return names[fold]
