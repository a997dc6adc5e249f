"""Where the Hydra configs are found: the checkout's top-level configs/, or the copy a wheel carries."""

from __future__ import annotations

from pathlib import Path

import pytest

from tconvseg.entry import CONFIG_DIR, find_config_dir
from tests.helpers.scripts import ROOT


def test_the_checkout_reads_its_top_level_configs():
    """An editable install (this test run) reads configs/ itself: an edit there is what the next run composes."""
    assert CONFIG_DIR == ROOT / "configs"
    assert (ROOT / "configs" / "train.yaml").is_file()
    assert not (ROOT / "src" / "tconvseg" / "configs").exists()  # one place, not a second copy in the package


def _package(root: Path, packaged: bool, checkout: bool) -> Path:
    package = root / "src" / "tconvseg"
    package.mkdir(parents=True)
    for folder, present in ((package / "configs", packaged), (root / "configs", checkout)):
        if present:
            folder.mkdir()
            (folder / "train.yaml").write_text("seed: 1\n")
    return package


def test_a_wheel_reads_the_configs_it_carries(tmp_path):
    package = _package(tmp_path, packaged=True, checkout=True)
    assert find_config_dir(package) == package / "configs"


def test_without_a_copy_in_the_package_the_checkout_is_used(tmp_path):
    package = _package(tmp_path, packaged=False, checkout=True)
    assert find_config_dir(package) == tmp_path / "configs"


def test_missing_configs_name_both_places(tmp_path):
    package = _package(tmp_path, packaged=False, checkout=False)
    with pytest.raises(FileNotFoundError) as err:
        find_config_dir(package)
    assert str(package / "configs") in str(err.value) and str(tmp_path / "configs") in str(err.value)
