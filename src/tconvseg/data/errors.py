"""Exceptions raised by the data layer.

Every message is one paragraph that names the offending file, directory, key or value and says what
was expected, so a user can fix the data without reading a traceback from PIL or torch.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

DATA_DIR_ENV = "TCONVSEG_DATA_DIR"
"""Environment variable the Hydra ``paths.data_dir`` setting reads the dataset root from."""


class DatasetError(ValueError):
    """The data on disk (or an argument describing it) is not what the dataset expects."""


class DatasetNotFoundError(DatasetError, FileNotFoundError):
    """A required file or directory does not exist.

    Subclasses both `DatasetError` and `FileNotFoundError`, so callers may catch either.
    """


def list_some(paths: Sequence[Path | str], limit: int = 5) -> str:
    """Render up to ``limit`` paths as a comma-separated list, with a count of the rest."""
    shown = ", ".join(str(p) for p in paths[:limit])
    rest = len(paths) - limit
    return f"{shown} (and {rest} more)" if rest > 0 else shown


def download_hint(holds: str, what: str = "it") -> str:
    """The one "how to get the data" sentence, in Hydra override syntax (the way users pass it)."""
    return (
        f"Add data.dataset.download=true to the command to fetch {what}, or set the environment variable "
        f"{DATA_DIR_ENV} to the directory that contains {holds}."
    )
