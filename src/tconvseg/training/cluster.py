"""Runs on clusters: one run folder per run, SLURM requeue and resume, the cluster plugin of the trainer.

The run folder's name comes from the ``${tconvseg.run_name:}`` resolver (see ``configs/hydra``):

* under SLURM (``srun``), ``slurm-<job id>.<step id>`` (``slurm-<array job id>_<task id>.<step id>``
  for array tasks): the same for every task of the job step and for the job after a requeue (its
  steps are numbered from 0 again), so the requeued job finds its own checkpoints and
  `requeued_checkpoint` resumes from them, while two ``srun`` runs in one job stay apart;
* under ``torchrun`` with a rendezvous id (``--rdzv-id``, or ``--standalone``), ``torchrun-<id>``:
  the same for every rank;
* otherwise ``<YYYY-mm-dd_HH-MM-SS>_<6 hex digits>``: unique even for runs started in the same second.
"""

from __future__ import annotations

import logging
import os
import re
import secrets
import signal
from datetime import datetime
from pathlib import Path
from typing import Any

from lightning.fabric.plugins.environments import SLURMEnvironment, TorchElasticEnvironment
from omegaconf import OmegaConf

from tconvseg.training.checkpoints import load_checkpoint
from tconvseg.training.run_record import RunRecord, describe

log = logging.getLogger(__name__)

#: The signal SLURM is asked to send before a job's time limit (``sbatch --signal=USR1@90``); on it
#: Lightning writes ``hpc_ckpt_<n>.ckpt`` into the run folder and requeues the job.
REQUEUE_SIGNAL = signal.SIGUSR1


def on_slurm() -> bool:
    """Whether this process is a SLURM task that Lightning treats as such (``srun``, not an interactive job)."""
    return SLURMEnvironment.detect() and not TorchElasticEnvironment.detect()


def slurm_job_id() -> str | None:
    """``<job id>``, or ``<array job id>_<task id>`` for an array task; ``None`` outside SLURM."""
    array_job, task = os.environ.get("SLURM_ARRAY_JOB_ID"), os.environ.get("SLURM_ARRAY_TASK_ID")
    if array_job and task:
        return f"{array_job}_{task}"
    return os.environ.get("SLURM_JOB_ID") or None


def run_name() -> str:
    """The name of this run's folder: shared by all processes of one run, distinct between runs (see module doc)."""
    job = slurm_job_id() if on_slurm() else None
    if job is not None:
        step = os.environ.get("SLURM_STEP_ID")
        return f"slurm-{job}" + (f".{step}" if step else "")
    rendezvous = os.environ.get("TORCHELASTIC_RUN_ID")
    if TorchElasticEnvironment.detect() and rendezvous and rendezvous != "none":
        return "torchrun-" + re.sub(r"[^A-Za-z0-9_.-]", "_", rendezvous)
    return f"{datetime.now():%Y-%m-%d_%H-%M-%S}_{secrets.token_hex(3)}"


def register_resolvers() -> None:
    """Register ``${tconvseg.run_name:}``; cached, so one config resolves it to one value.

    Hydra copies a config's resolver cache into every job of a multirun (as for ``${now:}``), and
    the submitit launcher pickles it with the job, so all jobs of a sweep share the sweep folder.
    """
    if not OmegaConf.has_resolver("tconvseg.run_name"):
        OmegaConf.register_new_resolver("tconvseg.run_name", run_name, use_cache=True)


def cluster_plugins() -> list[Any]:
    """Trainer plugins for the cluster this process runs on: SLURM's auto-requeue on `REQUEUE_SIGNAL`."""
    if on_slurm():
        return [SLURMEnvironment(auto_requeue=True, requeue_signal=REQUEUE_SIGNAL)]
    return []


def requeued_checkpoint(run_dir: str | os.PathLike[str], record: RunRecord) -> str | None:
    """The checkpoint a requeued SLURM job resumes from: the furthest of its run folder's own checkpoints.

    Candidates are Lightning's ``hpc_ckpt_<n>.ckpt`` (written on `REQUEUE_SIGNAL`) and
    ``checkpoints/last*.ckpt`` (written after epochs); unreadable files are skipped with a warning.
    ``None`` outside SLURM or when the folder holds none (the job's first start).

    Raises:
        ValueError: the folder's checkpoint belongs to another run (experiment, model or data).
    """
    if not on_slurm():
        return None
    folder = Path(run_dir)
    found: list[tuple[int, float, str]] = []
    for path in [*folder.glob("hpc_ckpt_*.ckpt"), *folder.glob("checkpoints/last*.ckpt")]:
        try:
            checkpoint = load_checkpoint(path)
        except ValueError as err:
            log.warning("SLURM requeue: skipping %s (%s)", path, err)
            continue
        stored = RunRecord.from_checkpoint(checkpoint)
        if record.differences(stored):
            raise ValueError(
                f"SLURM job {slurm_job_id()}: its run folder {folder} holds {path.name} of another run ({describe(stored)}) "
                f"than this one ({record.describe()}). Expected the folder of this job's earlier attempt; give the "
                "run its own folder with hydra.run.dir=<path>."
            )
        found.append((int(checkpoint.get("global_step", 0)), path.stat().st_mtime, str(path)))
    if not found:
        return None
    step, _, path = max(found)
    log.info("SLURM job %s was requeued: resuming from %s (global step %d)", slurm_job_id(), path, step)
    return path
