"""Peak memory of predict on video clips of different lengths: a table (no target is asserted).

    python scripts/video_memory.py [--ckpt PATH] [--frames 100 1000] [--size 360 480] [--data synthetic] [--batch-size 4]

Each clip (H.264 in MP4, moving shapes on noise, 30 frames/s) is predicted by ``scripts/predict.py`` in a fresh
process; the table gives its wall time (start-up and checkpoint loading included), frames per second over that
time, and the peak resident memory of that process (``resource.getrusage(RUSAGE_CHILDREN)`` of a wrapper that
runs only it). Streaming means the peak should not grow with the clip's length. Without ``--ckpt`` a tiny model
(``model=tiny data=synthetic``, one epoch) is trained first.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np
from predict_peak import run_predict  # scripts/ is on the path of a script run as python scripts/video_memory.py
from rich.console import Console
from rich.table import Table

ROOT = Path(__file__).resolve().parents[1]


def make_clip(path: Path, frames: int, height: int, width: int, rate: int = 30) -> Path:
    """``frames`` frames of ``height`` x ``width``: a noise background with two shapes moving across it."""
    import av

    rng = np.random.default_rng(0)
    background = rng.integers(0, 120, (height, width, 3), dtype=np.uint8)
    with av.open(str(path), "w") as container:
        stream = container.add_stream("libx264", rate=rate)
        stream.width, stream.height, stream.pix_fmt = width, height, "yuv420p"
        for i in range(frames):
            rgb = background.copy()
            x = (7 * i) % width
            rgb[height // 4 : height // 2, x : x + width // 6] = (230, 40, 40)
            rgb[height // 2 :, : (3 * i) % width] = (40, 200, 90)
            for packet in stream.encode(av.VideoFrame.from_ndarray(rgb, format="rgb24")):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    return path


def train_tiny(folder: Path) -> Path:
    """``last.ckpt`` of ``model=tiny data=synthetic`` trained for one epoch under ``folder``."""
    args = [sys.executable, str(ROOT / "scripts" / "train.py"), "data=synthetic", "model=tiny", "trainer=cpu", "logger=csv",
            "trainer.max_epochs=1", "validate_best=false", "data.num_workers=0", "callbacks.rich_progress_bar=null",
            "+trainer.enable_progress_bar=false", "+trainer.enable_model_summary=false", f"paths.root_dir={folder}"]
    subprocess.run(args, check=True, capture_output=True, text=True, cwd=folder)
    return max(folder.glob("logs/train/runs/*/checkpoints/last.ckpt"), key=lambda p: p.stat().st_mtime)


def run(ckpt: Path, clip: Path, out: Path, data: str, batch_size: int, timeout: int) -> tuple[float, int | None, str]:
    """``(seconds, peak RSS KiB or None, status)`` of one predict process."""
    seconds, peak, code, lines = run_predict([f"ckpt_path={ckpt}", f"input={clip}", f"output_dir={out}", f"data={data}",
                                              f"batch_size={batch_size}"], timeout, out.parent)
    if code is None:
        return seconds, None, "timed out"
    status = "ok" if code == 0 else f"exit {code}: {(lines[-1] if lines else '')[:80]}"
    return seconds, peak, status


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--ckpt", type=Path, help="a checkpoint (default: train a tiny one first)")
    parser.add_argument("--frames", nargs="+", type=int, default=[100, 1000])
    parser.add_argument("--size", nargs=2, type=int, default=[360, 480], metavar=("HEIGHT", "WIDTH"))
    parser.add_argument("--data", default="synthetic", help="data option (the normalisation and palette)")
    parser.add_argument("--batch-size", type=int, default=4)
    parser.add_argument("--timeout", type=int, default=3600)
    args = parser.parse_args()
    height, width = args.size
    table = Table(title=f"predict on a {width}x{height} clip: peak resident memory of the process (start-up included in the time)")
    for column in ("frames", "size", "seconds", "frames/s", "peak RSS MiB", "vs first", "status"):
        table.add_column(column, justify="right")
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        ckpt = args.ckpt or train_tiny(folder)
        first = None
        for frames in args.frames:
            clip = make_clip(folder / f"clip{frames}.mp4", frames, height, width)
            seconds, peak, status = run(ckpt, clip, folder / f"out{frames}", args.data, args.batch_size, args.timeout)
            first = first or peak
            ratio = f"{peak / first:.3f}" if peak and first else "–"
            rate = f"{frames / seconds:.1f}" if status == "ok" else "–"
            table.add_row(str(frames), f"{width}x{height}", f"{seconds:.1f}", rate, f"{peak / 1024:.0f}" if peak else "–", ratio, status)
    Console(width=200).print(table)


if __name__ == "__main__":
    main()
