"""Peak memory and speed of predict on large images, whole and tiled: a table (no target is asserted).

    python scripts/bench_predict.py --ckpt PATH [--megapixels 1 12 100] [--tiles none auto] [--data camvid]

Each (size, tiling) runs ``scripts/predict.py`` in a fresh process under GNU time (``/usr/bin/time``) on one
random RGB image of that many megapixels (3:2): the process's peak resident memory and its wall time.
A row that runs out of memory or time says so instead of a figure.
"""

from __future__ import annotations

import argparse
import math
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np
from PIL import Image
from rich.console import Console
from rich.table import Table

ROOT = Path(__file__).resolve().parents[1]


def make_image(folder: Path, megapixels: float) -> Path:
    height = int(math.sqrt(megapixels * 1e6 / 1.5))
    width = int(height * 1.5)
    path = folder / f"mp{megapixels:g}.png"
    rng = np.random.default_rng(0)
    Image.fromarray(rng.integers(0, 256, (height, width, 3), dtype=np.uint8)).save(path, compress_level=1)
    return path


def run(ckpt: str, image: Path, tiles: str, out: Path, data: str, timeout: int) -> tuple[str, str, str]:
    args = ["/usr/bin/time", "-f", "%M %e", sys.executable, str(ROOT / "scripts" / "predict.py"),
            f"ckpt_path={ckpt}", f"input={image}", f"output_dir={out}",
            f"data={data}", f"tiles={tiles}", "callbacks=none", "+trainer.enable_progress_bar=false", "max_image_pixels=1000000000"]
    try:
        result = subprocess.run(args, capture_output=True, text=True, timeout=timeout, cwd=out.parent)
    except subprocess.TimeoutExpired:
        return f"> {timeout} s", "–", "timed out"
    lines = result.stderr.strip().splitlines()
    kib, seconds = lines[-1].split()  # GNU time's line comes last
    status = "ok" if result.returncode == 0 else f"exit {result.returncode}: {(lines[-2] if len(lines) > 1 else '')[:60]}"
    return f"{float(seconds):.1f}", f"{int(kib) / 2**20:.2f}", status


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--ckpt", required=True)
    parser.add_argument("--megapixels", nargs="+", type=float, default=[1, 12, 100])
    parser.add_argument("--tiles", nargs="+", default=["none", "auto"])
    parser.add_argument("--data", default="camvid", help="data option (the normalisation and palette)")
    parser.add_argument("--timeout", type=int, default=900)
    args = parser.parse_args()
    table = Table(title="predict: one image, peak resident memory of the process")
    for column in ("megapixels", "tiles", "seconds", "images/s", "peak RSS GiB", "status"):
        table.add_column(column, justify="right")
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        for mp in sorted(args.megapixels):
            image = make_image(folder, mp)
            for tiles in args.tiles:
                out = folder / f"out_{mp:g}_{''.join(c for c in tiles if c.isalnum())}"  # no brackets: it is a Hydra override
                seconds, peak, status = run(args.ckpt, image, tiles, out, args.data, args.timeout)
                rate = f"{1 / float(seconds):.3f}" if status == "ok" else "–"
                table.add_row(f"{mp:g}", tiles, seconds, rate, peak, status)
    Console(width=200).print(table)


if __name__ == "__main__":
    main()
