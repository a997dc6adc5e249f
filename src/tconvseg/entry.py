"""How the Hydra entry points start: the project's configs, plus a user's own folder.

The configs live in the repository's top-level ``configs/`` (where users of Hydra templates look for
them, and the one place they are edited). The wheel's build maps that folder to ``tconvseg/configs``
(``[tool.hatch.build.targets.wheel.force-include]`` in pyproject.toml), so a non-editable
``pip install .`` carries them; an editable install or a checkout reads the top-level folder itself.
A user's folder joins the search path with Hydra's ``--config-dir DIR`` or, equivalently,
``$TCONVSEG_CONFIG_DIR``: its files add options (``model=my_model``) or shadow packaged ones.
"""

from __future__ import annotations

import logging
import os
import sys
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import hydra
from hydra.core.hydra_config import HydraConfig
from hydra.types import RunMode
from omegaconf import DictConfig

from tconvseg.training.cluster import register_resolvers


def find_config_dir(package_dir: Path) -> Path:
    """The Hydra configs: ``<package>/configs`` in an installed wheel, else the checkout's top-level ``configs/``.

    Raises:
        FileNotFoundError: neither exists (a copy of the package without its configs), naming both places.
    """
    packaged = package_dir / "configs"           # a wheel: the build put them here
    checkout = package_dir.parents[1] / "configs"  # src/tconvseg -> the repository root
    for candidate in (packaged, checkout):
        if (candidate / "train.yaml").is_file():
            return candidate
    raise FileNotFoundError(
        f"tconvseg's Hydra configs are missing: neither {packaged} (an installed wheel) nor {checkout} (a checkout) "
        "holds train.yaml. Expected an install built from the repository (pip install . / pip install -e .)."
    )


#: The project's Hydra configs (train.yaml, eval.yaml and the groups).
CONFIG_DIR = find_config_dir(Path(__file__).resolve().parent)
#: Environment variable naming a folder of the user's own configs.
USER_CONFIG_ENV = "TCONVSEG_CONFIG_DIR"

log = logging.getLogger(__name__)

# Before any config is composed: configs/hydra names run folders with ${tconvseg.run_name:}.
register_resolvers()


class ObjectiveError(KeyError):
    """``optimized_metric`` names a metric the run did not produce."""


def in_multirun() -> bool:
    """Whether this process runs a job of a Hydra multirun (a sweep)."""
    return HydraConfig.initialized() and HydraConfig.get().mode == RunMode.MULTIRUN


def objective(metrics: Mapping[str, float], cfg: DictConfig) -> float | None:
    """The value of ``cfg.optimized_metric`` in ``metrics`` (what sweepers optimise); ``None`` when unset.

    A missing metric is an error in a multirun (a sweeper needs the number) and a warning otherwise
    (e.g. ``validate_best=false`` on a single run).
    """
    name = cfg.get("optimized_metric")
    if not name:
        return None
    if name not in metrics:
        if not in_multirun():
            log.warning("optimized_metric=%s was not produced by this run; returning None", name)
            return None
        raise ObjectiveError(
            f"optimized_metric={name!r} is not among this run's metrics {sorted(metrics)[:12]}...; expected one of "
            "them (e.g. best/val/mIoU, which needs validate_best=true)."
        )
    return float(metrics[name])


def _user_config_args(argv: list[str]) -> list[str]:
    folder = os.environ.get(USER_CONFIG_ENV)
    if not folder or any(a in ("--config-dir", "-cd") or a.startswith("--config-dir=") for a in argv):
        return []
    if not Path(folder).is_dir():
        raise FileNotFoundError(f"${USER_CONFIG_ENV}={folder} is not a folder; expected a folder of Hydra configs (or unset it)")
    return ["--config-dir", folder]


def run_hydra(task: Callable[[DictConfig], Any], config_name: str) -> None:
    """Run ``task`` under ``@hydra.main`` with the packaged ``config_name`` and the command-line overrides."""
    sys.argv[1:1] = _user_config_args(sys.argv[1:])
    hydra.main(version_base="1.3", config_path=str(CONFIG_DIR), config_name=config_name)(task)()
