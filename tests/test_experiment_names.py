"""Experiments are named for what they are and composed at one level; the old names still work for one release."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml
from omegaconf import OmegaConf

from tconvseg.tasks.train import _warn_if_renamed
from tconvseg.training.run_record import EXPERIMENT_RENAMES, RunRecord, current_experiment_name
from tests.helpers.configs import CONFIG_DIR, compose_cfg

EXPERIMENTS = Path(CONFIG_DIR) / "experiment"
PARTS = Path(CONFIG_DIR) / "parts"


def _defaults(path: Path) -> list:
    return yaml.safe_load(path.read_text()).get("defaults") or []


def _extends(path: Path) -> list[str]:
    """The experiments ``path`` extends: plain entries of its defaults list that name a file of the group."""
    return [e for e in _defaults(path) if isinstance(e, str) and e != "_self_" and (EXPERIMENTS / f"{e}.yaml").is_file()]


def _composed(tmp_path: Path, experiment: str) -> dict:
    cfg = OmegaConf.to_container(compose_cfg("train", tmp_path, [f"experiment={experiment}"]), resolve=True)
    cfg.pop("experiment_renamed")
    return cfg


@pytest.mark.parametrize("path", sorted(EXPERIMENTS.glob("*.yaml")), ids=lambda p: p.stem)
def test_an_experiment_extends_at_most_one_other_which_extends_none(path):
    parents = _extends(path)
    assert len(parents) <= 1, f"{path.name} extends {parents}: at most one experiment"
    for parent in parents:
        assert not _extends(EXPERIMENTS / f"{parent}.yaml"), f"{path.name} extends {parent}, which extends another: one level only"
    # Everything else is a config group's option, an override or a part (configs/parts), never a relative include.
    for entry in _defaults(path):
        if isinstance(entry, str) and entry not in ("_self_", *parents):
            assert entry.startswith("/parts/") and (PARTS / f"{entry[len('/parts/'):]}.yaml").is_file(), f"{path.name}: {entry}"


@pytest.mark.parametrize("path", sorted(PARTS.glob("*.yaml")), ids=lambda p: p.stem)
def test_a_part_includes_no_experiment_and_is_global(path):
    assert path.read_text().startswith("# @package _global_")
    assert all(not isinstance(e, str) for e in _defaults(path)), f"{path.name} may only override groups"


def test_the_renames_and_the_alias_configs_agree():
    aliases = {p.stem: yaml.safe_load(p.read_text()).get("experiment_renamed") for p in EXPERIMENTS.glob("*.yaml")}
    aliases = {stem: marker for stem, marker in aliases.items() if marker}
    assert aliases == {old: {"old": old, "new": new} for old, new in EXPERIMENT_RENAMES.items()}
    assert not set(EXPERIMENT_RENAMES.values()) & set(EXPERIMENT_RENAMES), "a new name is itself renamed"
    assert current_experiment_name("camvid_cpu_60min") == "recipe_cpu_60min" and current_experiment_name("x") == "x"


@pytest.mark.parametrize(("old", "new"), sorted(EXPERIMENT_RENAMES.items()))
def test_an_old_name_composes_to_its_new_experiment_and_training_warns(old, new, tmp_path):
    assert _composed(tmp_path, old) == _composed(tmp_path, new)
    with pytest.warns(FutureWarning, match=rf"experiment={old} is a deprecated name, kept for one release: use experiment={new} "):
        _warn_if_renamed(compose_cfg("train", tmp_path, [f"experiment={old}"]))


def test_the_new_names_train_without_a_warning(tmp_path, recwarn):
    for new in sorted(set(EXPERIMENT_RENAMES.values())):
        _warn_if_renamed(compose_cfg("train", tmp_path, [f"experiment={new}"]))
    assert not [w for w in recwarn if issubclass(w.category, FutureWarning)]


def test_a_record_written_under_an_old_name_is_the_same_run_under_the_new_one():
    stored = {"experiment": "camvid_cpu_60min", "model": {"_target_": "m"}, "data": {"info": "camvid"}}
    old = RunRecord.from_dict(stored)
    new = RunRecord.from_dict({**stored, "experiment": "recipe_cpu_60min"})
    assert old.experiment == "recipe_cpu_60min" and old.differences(new) == []
    other = RunRecord.from_dict({**stored, "experiment": "recipe_v2_cpu_60min"})
    assert old.differences(other)
