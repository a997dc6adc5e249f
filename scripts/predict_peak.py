"""Shared by the memory benchmarks (tile_memory.py, video_memory.py): run ``scripts/predict.py`` in a fresh process
and read its peak resident memory. Not a command of its own.

The peak is ``getrusage(RUSAGE_CHILDREN).ru_maxrss`` of a small wrapper process whose only child is predict, so it
is predict's own peak (model, inputs, outputs), not the benchmark's.
"""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
#: predict without progress bars or model summary: nothing but the work is measured.
QUIET = ["callbacks=none", "+trainer.enable_progress_bar=false", "+trainer.enable_model_summary=false"]
#: Runs the command given as its arguments, then prints that child's peak RSS (KiB on Linux) as its last stderr line.
WRAPPER = ("import resource, subprocess, sys; rc = subprocess.call(sys.argv[1:]); "
           "print(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss, file=sys.stderr); sys.exit(rc)")


def run_predict(options: list[str], timeout: int, cwd: Path) -> tuple[float, int | None, int | None, list[str]]:
    """``(seconds, peak RSS KiB, exit code, stderr lines)`` of ``python scripts/predict.py <options> <QUIET>``;
    peak and exit code are ``None`` when it ran past ``timeout`` seconds."""
    args = [sys.executable, "-c", WRAPPER, sys.executable, str(ROOT / "scripts" / "predict.py"), *options, *QUIET]
    start = time.perf_counter()
    try:
        result = subprocess.run(args, capture_output=True, text=True, timeout=timeout, cwd=cwd)
    except subprocess.TimeoutExpired:
        return float(timeout), None, None, []
    seconds = time.perf_counter() - start
    lines = result.stderr.strip().splitlines()
    peak = int(lines[-1]) if lines and lines[-1].isdigit() else None
    return seconds, peak, result.returncode, lines[:-1] if peak is not None else lines
