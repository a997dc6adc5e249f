"""Files written atomically: a kill mid-write leaves the old file or none, never a truncated one.

Each write goes to a temp file beside the target (``os.replace`` is atomic only within one filesystem), is
fsynced, swapped in with ``os.replace`` (atomic on POSIX and Windows), and the folder is fsynced. Lightning's
checkpoints go through `AtomicCheckpointIO`; reports, images and exports through the functions here.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import IO, Any

import torch
from lightning.fabric.plugins.io.torch_io import TorchCheckpointIO
from PIL import Image

from tconvseg.training.checkpoints import UnsafeCheckpointError, load_checkpoint


class AtomicCheckpointIO(TorchCheckpointIO):
    """Lightning checkpoint IO that never leaves a half-written file under the final name.

    Lightning's own save goes through an fsspec transaction whose temp file lives in the system temp
    dir; when that is another filesystem the commit is a copy over the old file, so a kill during
    the copy destroys the previous checkpoint. Here the temp file sits beside the target, is fsynced,
    and ``os.replace`` swaps it in (atomic on POSIX and Windows). Loads always use
    ``weights_only=True``.
    """

    def save_checkpoint(self, checkpoint: dict[str, Any], path: str | os.PathLike[str], storage_options: Any = None) -> None:
        if storage_options is not None:
            raise TypeError(f"{type(self).__name__} takes no storage_options, got {storage_options!r}")
        atomic_torch_save(checkpoint, Path(path))

    def load_checkpoint(self, path: str | os.PathLike[str], map_location: Any = None, weights_only: bool | None = None) -> dict[str, Any]:
        if weights_only is False:
            raise UnsafeCheckpointError(f"refusing to load {path} with weights_only=False: checkpoints are data, never code")
        if not Path(path).is_file():
            raise FileNotFoundError(f"checkpoint {path} not found")
        return load_checkpoint(path)


def atomic_torch_save(obj: Any, path: Path) -> None:
    """``torch.save`` to a temp file in ``path``'s folder, fsync, then ``os.replace`` onto ``path``."""
    path.parent.mkdir(parents=True, exist_ok=True)
    _atomic_write(path, lambda handle: torch.save(obj, handle), binary=True)


def atomic_write_text(text: str, path: Path) -> None:
    """Write ``text`` to ``path`` through a temp file in the same folder and ``os.replace``."""
    _atomic_write(path, lambda handle: handle.write(text), binary=False)


def atomic_save_image(image: Any, path: Path, **options: Any) -> None:
    """``image.save`` (a PIL image; format from ``path``'s suffix) through a temp file and ``os.replace``:
    an interrupted write leaves the old file or none, never a truncated one."""
    fmt = Image.registered_extensions()[path.suffix.lower()]
    _atomic_write(path, lambda handle: image.save(handle, format=fmt, **options), binary=True)


def _atomic_write(path: Path, write: Callable[[IO[Any]], object], binary: bool) -> None:
    # The temp file sits beside the target: os.replace is atomic only within one filesystem.
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb" if binary else "w") as handle:
            write(handle)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    _fsync_dir(path.parent)


def _fsync_dir(folder: Path) -> None:
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:  # e.g. Windows cannot open folders; the rename is still atomic there
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)
