"""Checkpoint files: safe loading, finding the run to resume, what a run stores (writing: `tconvseg.training.atomic`).

Trust model: a checkpoint is data, never code. Every load uses ``torch.load(weights_only=True)``
(the project's own keys are plain containers, strings, numbers and tensors), and the model config
stored inside a checkpoint is instantiated only after `check_targets` has vetted every
``_target_`` in it against `ALLOWED_TARGETS`.
"""

from __future__ import annotations

import glob
import logging
import os
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import torch
from hydra.utils import get_object

from tconvseg.training.run_record import CKPT_RUN_IDENTITY as CKPT_RUN_IDENTITY  # the record's key, defined beside the record
from tconvseg.training.run_record import RunRecord, describe

log = logging.getLogger(__name__)

#: Key under which the training run's model config is stored inside each checkpoint.
CKPT_MODEL_CONFIG = "tconvseg_model_config"

#: Modules whose callables a checkpoint's stored model config may name, with the kind of object
#: each may resolve to (``None``: any function or class defined in that module tree). Builders of
#: networks, losses, schedules and the training system; torch modules and optimizers as classes
#: only. Nothing here reads or writes files, starts processes or downloads (encoder weights named
#: in a stored config are switched off by `disable_weight_downloads`).
ALLOWED_TARGETS: dict[str, type | None] = {
    "tconvseg.nn": None,
    "tconvseg.peers": None,  # torchvision segmentation models, random init, no downloads
    "tconvseg.losses": None,
    "tconvseg.training.schedules": None,
    "tconvseg.training.system": None,
    "torch.nn": torch.nn.Module,
    "torch.optim": None,  # optimizers and LR schedulers (classes), checked as classes below
}


#: Modules that moved when the package was grouped by job (2026-12-07): a stored model config that names an old
#: dotted path is read as naming the new one (`upgrade_moved_targets`), so checkpoints written before keep loading.
MOVED_MODULES: dict[str, str] = {
    "tconvseg.system": "tconvseg.training.system",
    "tconvseg.schedules": "tconvseg.training.schedules",
    "tconvseg.metrics": "tconvseg.training.metrics",
    "tconvseg.tta": "tconvseg.inference.tta",
    "tconvseg.tiling": "tconvseg.inference.tiling",
}


def upgrade_moved_targets(node: Any) -> Any:
    """A copy of ``node`` (plain containers) whose ``_target_`` strings name today's modules (`MOVED_MODULES`)."""
    if isinstance(node, Mapping):
        return {key: _moved(value) if key == "_target_" else upgrade_moved_targets(value) for key, value in node.items()}
    if isinstance(node, (list, tuple)):
        return type(node)(upgrade_moved_targets(value) for value in node)
    return node


def _moved(target: Any) -> Any:
    if not isinstance(target, str):
        return target
    for old, new in MOVED_MODULES.items():
        if target.startswith(old + "."):
            return new + target[len(old):]
    return target


class UnsafeCheckpointError(ValueError):
    """A checkpoint asks for something this project will not run."""


def _targets(node: Any, where: str = "model") -> Iterator[tuple[str, Any]]:
    if isinstance(node, Mapping):
        for key, value in node.items():
            if key == "_target_":
                yield where, value
            else:
                yield from _targets(value, f"{where}.{key}")
    elif isinstance(node, (list, tuple)):
        for i, value in enumerate(node):
            yield from _targets(value, f"{where}[{i}]")


def _strings(node: Any) -> Iterator[str]:
    if isinstance(node, Mapping):
        for key, value in node.items():
            yield str(key)
            yield from _strings(value)
    elif isinstance(node, (list, tuple)):
        for value in node:
            yield from _strings(value)
    elif isinstance(node, str):
        yield node


def _allowed(path: str, trusted: Sequence[str] = ()) -> bool:
    prefix = next((p for p in ALLOWED_TARGETS if path == p or path.startswith(p + ".")), None)
    if prefix is None:
        # A user's own modules, trusted by name on the command line (trusted_targets=[mypkg]).
        return any(path.startswith(t.rstrip(".") + ".") for t in trusted)
    try:
        obj = get_object(path)
    except Exception:  # noqa: BLE001 - an unresolvable target is simply not allowed
        return False
    # The object must be *defined* under the allowed module, not merely re-exported there
    # (``tconvseg.nn.os.system`` resolves, but os.system lives in ``posix``).
    module = getattr(obj, "__module__", "") or ""
    if not (module == prefix or module.startswith(prefix + ".")):
        return False
    if not (isinstance(obj, type) or callable(obj)):
        return False
    required = ALLOWED_TARGETS[prefix]
    if prefix == "torch.optim":
        return isinstance(obj, type)
    return required is None or (isinstance(obj, type) and issubclass(obj, required))


def check_targets(config: Any, source: str, trusted: Sequence[str] = ()) -> None:
    """Refuse a stored config that names a callable outside `ALLOWED_TARGETS`.

    ``trusted``: extra module prefixes the user vouches for (their own decoder package).
    Also refuses OmegaConf interpolations (``${...}``): a stored config was saved resolved, so an
    interpolation can only have been written in by hand, e.g. to read environment variables.

    Raises:
        UnsafeCheckpointError: naming the offending key, its value and the allowlist.
    """
    for where, target in _targets(config):
        if not isinstance(target, str) or not _allowed(target, trusted):
            raise UnsafeCheckpointError(
                f"checkpoint {source} asks to build {where}._target_={target!r}, which is not on the allowlist of "
                f"model parts ({', '.join(p + '.*' for p in ALLOWED_TARGETS)}; torch.nn as module classes only). "
                "tconvseg refuses to run it. If that part is your own code, allow its package with "
                "trusted_targets=[your_package], or evaluate with model_from_checkpoint=false and the matching model=... option."
            )
    for text in _strings(config):
        if "${" in text:
            raise UnsafeCheckpointError(
                f"checkpoint {source} stores an interpolation {text!r} in its model config; expected plain values "
                "(tconvseg saves configs resolved). Refusing to resolve it."
            )


def disable_weight_downloads(config: dict) -> dict:
    """A copy of a stored model config with every ``weights:`` set to ``None``.

    The checkpoint's own tensors replace any pretrained weights, so fetching them would only be a
    network side effect of opening a file.
    """
    if isinstance(config, Mapping):
        return {k: (None if k == "weights" else disable_weight_downloads(v)) for k, v in config.items()}
    if isinstance(config, list):
        return [disable_weight_downloads(v) for v in config]
    return config


def load_checkpoint(path: str | os.PathLike[str]) -> dict:
    """``torch.load(path, weights_only=True)`` on CPU, with one clear error for any unreadable file.

    The stored model config's targets are upgraded to today's module paths (`upgrade_moved_targets`).

    Raises:
        ValueError: the file is truncated, not a checkpoint, or holds objects other than plain data
            (a pickle that would run code is refused by ``weights_only=True`` and never executed).
    """
    try:
        checkpoint = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:  # noqa: BLE001 - any failure means the file is not a usable checkpoint
        first = str(err).strip().splitlines()[0] if str(err).strip() else ""
        raise ValueError(
            f"cannot read checkpoint {path}: {type(err).__name__}: {first[:300]}. Expected a Lightning checkpoint "
            "written by tconvseg (loaded with weights_only=True: plain tensors and containers, no pickled code)."
        ) from None
    if not isinstance(checkpoint, dict):
        raise ValueError(f"cannot read checkpoint {path}: it holds a {type(checkpoint).__name__}, expected a dict")
    if CKPT_MODEL_CONFIG in checkpoint:  # checkpoints written before the modules moved name their old paths
        checkpoint[CKPT_MODEL_CONFIG] = upgrade_moved_targets(checkpoint[CKPT_MODEL_CONFIG])
    return checkpoint


def resume_checkpoint_path(callbacks: Sequence[Any]) -> str:
    """The newest checkpoint written for resuming by these ``ModelCheckpoint`` callbacks, ``""`` if none yet.

    That is the file of a callback with ``monitor=None`` (configs/callbacks/model_checkpoint.yaml's
    ``last_checkpoint``: it rewrites ``last.ckpt`` at every validation), else a ``save_last`` file.
    A monitored callback's ``last_model_path`` alone is not enough: since Lightning 2.6 it moves only
    when a new top-k checkpoint is written.
    """
    for callback in callbacks:
        if getattr(callback, "monitor", "") is None and getattr(callback, "best_model_path", ""):
            return str(callback.best_model_path)
    return next((str(c.last_model_path) for c in callbacks if getattr(c, "last_model_path", "")), "")


def stored_best(checkpoint: Mapping[str, Any]) -> tuple[str, float | None, str | None]:
    """The best checkpoint's path, score and monitored metric, as the monitored ``ModelCheckpoint`` stored them.

    States without a monitor (``last_checkpoint``, which writes last.ckpt) are skipped; ``("", None, None)``
    when no monitored callback stored a state.
    """
    for state in checkpoint.get("callbacks", {}).values():
        if isinstance(state, dict) and "best_model_score" in state and state.get("monitor"):
            score = state["best_model_score"]
            return state.get("best_model_path", ""), (float(score) if score is not None else None), state.get("monitor")
    return "", None, None


def run_dir_of(ckpt_path: str | os.PathLike[str]) -> Path:
    """The training run's folder: the parent of ``checkpoints/``, else the checkpoint's folder."""
    folder = Path(ckpt_path).resolve().parent
    return folder.parent if folder.name == "checkpoints" else folder


def find_last_checkpoint(log_dir: str | os.PathLike[str], task_name: str, record: RunRecord | None = None) -> str:
    """The newest readable ``last*.ckpt`` of ``log_dir/task_name/runs/*`` whose run matches ``record`` (any run without it).

    Unreadable (truncated, foreign) files are skipped with a warning, so a crash during a write can
    never make ``ckpt_path=last`` choose a broken file.

    Raises:
        FileNotFoundError: no readable ``last*.ckpt`` under the pattern.
        ValueError: there are some, but none of the same experiment / model / data (naming both).
    """
    pattern = str(Path(log_dir) / task_name / "runs" / "*" / "checkpoints" / "last*.ckpt")
    found = sorted(glob.glob(pattern), key=os.path.getmtime, reverse=True)
    readable: list[tuple[str, dict]] = []
    for path in found:
        try:
            readable.append((path, load_checkpoint(path)))
        except ValueError as err:
            log.warning("ckpt_path=last: skipping %s (%s)", path, err)
    if not readable:
        raise FileNotFoundError(
            f"ckpt_path=last: no readable last.ckpt found under {pattern}. Give the checkpoint's path instead "
            "(ckpt_path=logs/train/runs/<run>/checkpoints/last.ckpt), or start a new run without ckpt_path."
        )
    if record is None:
        return readable[0][0]
    for path, checkpoint in readable:
        if not record.differences(RunRecord.from_checkpoint(checkpoint)):
            return path
    newest, checkpoint = readable[0]
    raise ValueError(
        f"ckpt_path=last: the newest run {newest} is another experiment ({describe(RunRecord.from_checkpoint(checkpoint))}) "
        f"than this one ({record.describe()}), and no run under {pattern} matches. Expected a run of the same "
        "experiment, model and data: start a new run (drop ckpt_path) or give ckpt_path=<path> of the run to resume."
    )
