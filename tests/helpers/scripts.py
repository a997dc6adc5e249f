"""Running ``scripts/*.py`` in a subprocess, as a user would, with outputs under a test's folder."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

#: The repository root (scripts/ and src/ under it).
ROOT = Path(__file__).resolve().parents[2]


def script_env(root: Path, **extra: str) -> dict[str, str]:
    """The environment of a script run: logs under ``root``, one thread per process, this checkout's sources."""
    return {**os.environ, "TCONVSEG_ROOT": str(root), "OMP_NUM_THREADS": "1",
            "PYTHONPATH": os.pathsep.join([str(ROOT / "src"), str(ROOT)]), **extra}


def run_script(script: str, args: list[str], root: Path, timeout: int = 300, check: bool = True, **env: str) -> subprocess.CompletedProcess:
    """``python scripts/<script> <args>`` in ``root``; with ``check``, a non-zero exit fails the test with the output's tail."""
    result = subprocess.run([sys.executable, str(ROOT / "scripts" / script), *args], cwd=root, env=script_env(root, **env),
                            capture_output=True, text=True, timeout=timeout)
    if check:
        assert result.returncode == 0, (result.stdout + result.stderr)[-4000:]
    return result
