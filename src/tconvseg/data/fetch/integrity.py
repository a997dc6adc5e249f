"""Integrity checks for downloaded data: git object ids of a folder, and option validation.

A GitHub archive is generated on request and its bytes are not promised to be stable, but the commit
it is made from fixes the git tree id of every folder in it. `git_tree_id` computes that id
for a folder on disk, so extracted data can be checked against the id git records for the commit
(``git ls-tree <commit> <folder>``).
"""

from __future__ import annotations

import hashlib
import os
import re
import stat
from pathlib import Path

from tconvseg.data.errors import DatasetError

_CHUNK = 1 << 20
_EMPTY_TREE = "4b825dc642cb6eb9a060e54bf8d69288fbee4904"


def git_blob_id(path: str | os.PathLike[str]) -> str:
    """Git blob id of a file's content: ``sha1(b"blob <size>\\0" + data)`` (``git hash-object``)."""
    path = Path(path)
    size = path.stat().st_size
    digest = hashlib.sha1(b"blob %d\0" % size)
    read = 0
    with open(path, "rb") as f:
        while chunk := f.read(_CHUNK):
            digest.update(chunk)
            read += len(chunk)
    if read != size:  # changed while hashing: the id would describe no real content
        raise DatasetError(f"{path} changed size while its git blob id was computed ({size} -> {read} bytes).")
    return digest.hexdigest()


def _tree_entries(folder: Path) -> bytes | None:
    """Serialized git tree of ``folder``; ``None`` when it holds no file (git records no empty tree)."""
    entries: list[tuple[bytes, bytes]] = []  # (sort key, serialized entry)
    with os.scandir(folder) as it:
        for entry in it:
            name = os.fsencode(entry.name)
            if entry.is_symlink():
                target = os.fsencode(os.readlink(entry.path))
                mode, oid, key = b"120000", hashlib.sha1(b"blob %d\0" % len(target) + target).digest(), name
            elif entry.is_dir():
                sub = _tree_entries(Path(entry.path))
                if sub is None:
                    continue
                mode, oid, key = b"40000", hashlib.sha1(b"tree %d\0" % len(sub) + sub).digest(), name + b"/"
            elif entry.is_file():
                executable = entry.stat().st_mode & stat.S_IXUSR
                mode, oid, key = (b"100755" if executable else b"100644"), bytes.fromhex(git_blob_id(entry.path)), name
            else:
                raise DatasetError(f"{entry.path} is neither a file, a directory nor a symlink; git cannot record it.")
            entries.append((key, mode + b" " + name + b"\0" + oid))
    if not entries:
        return None
    entries.sort()  # git orders entries by name bytes, a directory as if its name ended in "/"
    return b"".join(serialized for _, serialized in entries)


def git_tree_id(folder: str | os.PathLike[str]) -> str:
    """Git tree id of ``folder``'s content, as ``git add -A && git write-tree`` would record it.

    Files are blobs of mode ``100644``, or ``100755`` when the owner may execute them; symlinks are
    ``120000`` blobs of their target; sub-folders are ``40000`` trees, and folders without any file
    are left out (git does not track empty folders). Entries are ordered by the bytes of their name,
    a folder's name compared as if it ended in ``/``. The empty folder gives git's empty tree.
    """
    data = _tree_entries(Path(folder))
    if data is None:
        return _EMPTY_TREE
    return hashlib.sha1(b"tree %d\0" % len(data) + data).hexdigest()


def check_hex(value: str | None, digits: int, key: str, what: str) -> str | None:
    """``value`` in lower case if it is ``None`` or ``digits`` hexadecimal digits, else a `DatasetError`.

    ``key`` is the config key under ``data.dataset`` that the message names.
    """
    if value is None:
        return None
    if not isinstance(value, str) or not re.fullmatch(f"[0-9a-f]{{{digits}}}", value.lower()):
        raise DatasetError(
            f"{key}={value!r} is not {what} ({digits} hexadecimal digits); set data.dataset.{key} to one, "
            f"or to null to skip this check."
        )
    return value.lower()


def check_positive(value: float, key: str, unit: str) -> None:
    """Raise a `DatasetError` naming ``data.dataset.<key>`` unless ``value`` is a number > 0."""
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not value > 0:
        raise DatasetError(f"{key}={value!r} is not a positive number of {unit}; set data.dataset.{key} to one.")
