"""Peak memory of predict on large photos, whole and tiled: a table (no target is asserted).

    python scripts/tile_memory.py [--ckpt PATH] [--rows whole24 tiled24 tiled100] [--timeout 1800] [--shrink 1] [--data camvid]

Each row runs the real entry, ``python scripts/predict.py ckpt_path=... input=... tiles=...``, in a fresh
process (``predict_peak.run_predict``: ``getrusage(RUSAGE_CHILDREN).ru_maxrss`` of a wrapper): the peak resident
memory of predict alone (model, image, tiles, mask, overlay and the written files). The photos are synthetic JPEGs
(smooth gradients, shapes and noise): 6000 x 4000 (24 MP) and 12500 x 8000 (100 MP); ``--shrink N`` divides both sides
by N (a quick check of the script itself).

Without ``--ckpt`` the script first makes an untrained checkpoint of the recipe's network (FCN-8s on
EfficientNet-Lite0, ``model=fcn8s_efficientnet_lite0`` with random weights, 11 classes like CamVid; one training
step on generated shapes): the memory of inference depends on the architecture and the class count, not on the
weights. The code measured is whatever ``tconvseg`` the interpreter imports (``PYTHONPATH=.../src`` picks a checkout).
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np
from PIL import Image
from predict_peak import run_predict  # scripts/ is on the path of a script run as python scripts/tile_memory.py
from rich.console import Console
from rich.table import Table

ROOT = Path(__file__).resolve().parents[1]

#: name -> (width, height, predict options)
ROWS = {
    "whole24": (6000, 4000, ["tiles=none"]),
    "tiled24": (6000, 4000, ["tiles=auto", "max_pixels_per_batch=1000000"]),
    "tiled100": (12500, 8000, ["tiles=auto", "max_pixels_per_batch=1000000"]),
    "whole100": (12500, 8000, ["tiles=none"]),
}


def make_photo(path: Path, width: int, height: int) -> Path:
    """A JPEG of smooth gradients, a few discs and mild noise (compresses like a photo, unlike pure noise)."""
    rng = np.random.default_rng(0)
    image = np.empty((height, width, 3), dtype=np.uint8)
    xs = np.linspace(0, 1, width, dtype=np.float32)
    for top in range(0, height, 1000):  # in bands: the script itself stays small next to what it measures
        ys = np.linspace(top / height, min(top + 1000, height) / height, min(1000, height - top), dtype=np.float32)[:, None]
        band = np.stack([255 * xs * (1 - ys), 255 * ys + 0 * xs, 128 + 100 * np.sin(12 * xs + 7 * ys)], axis=-1)
        band += rng.normal(0, 8, band.shape).astype(np.float32)
        image[top : top + band.shape[0]] = np.clip(band, 0, 255).astype(np.uint8)
    picture = Image.fromarray(image)
    del image
    from PIL import ImageDraw

    draw = ImageDraw.Draw(picture)
    for _ in range(40):
        low = min(50, height // 12)
        x, y, r = int(rng.integers(0, width)), int(rng.integers(0, height)), int(rng.integers(low, max(low + 1, height // 6)))
        draw.ellipse([x - r, y - r, x + r, y + r], fill=tuple(int(c) for c in rng.integers(0, 256, 3)))
    picture.save(path, quality=90)
    return path


def make_checkpoint(folder: Path) -> Path:
    """An untrained recipe-sized checkpoint: FCN-8s on EfficientNet-Lite0 (random weights), 11 classes, one step."""
    run = folder / "ckpt_run"
    args = [sys.executable, str(ROOT / "scripts" / "train.py"), "model=fcn8s_efficientnet_lite0", "model.net.encoder.weights=null",
            "data=synthetic", "data.info.num_classes=11", "data.num_workers=0", "trainer=cpu", "trainer.max_epochs=1", "+trainer.max_steps=1",
            "logger=csv", "callbacks.rich_progress_bar=null", "+trainer.enable_progress_bar=false", "+trainer.enable_model_summary=false",
            "validate_best=false", f"paths.output_dir={run}"]
    subprocess.run(args, check=True, capture_output=True, cwd=folder)
    return run / "checkpoints" / "last.ckpt"


def measure(ckpt: Path, image: Path, options: list[str], out: Path, timeout: int, data: str) -> tuple[str, str, str]:
    """``(seconds, peak RSS GiB, status)`` of one predict run in a fresh process."""
    seconds, kib, code, _ = run_predict([f"ckpt_path={ckpt}", f"input={image}", f"output_dir={out}", f"data={data}",
                                         "max_image_pixels=1000000000", *options], timeout, out.parent)
    if code is None:
        return f"> {timeout}", "–", "timed out"
    status = "ok" if code == 0 and (out / f"{image.stem}.png").is_file() else f"exit {code}"
    return f"{seconds:.1f}", f"{kib / 2**20:.2f}" if kib is not None else "–", status


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--ckpt", type=Path, help="a checkpoint; default: an untrained recipe-sized one made here")
    parser.add_argument("--rows", nargs="+", choices=sorted(ROWS), default=["whole24", "tiled24", "tiled100"])
    parser.add_argument("--timeout", type=int, default=1800, help="seconds per row")
    parser.add_argument("--shrink", type=int, default=1, help="divide both sides of each photo by this")
    parser.add_argument("--data", default="camvid", help="data option of predict (the normalisation and palette)")
    args = parser.parse_args()
    table = Table(title=f"predict, one photo: peak RSS of the process (tconvseg from {Path(__import__('tconvseg').__file__).parents[1]})")
    for column in ("image", "options", "seconds", "peak RSS GiB", "status"):
        table.add_column(column, justify="right")
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        ckpt = args.ckpt or make_checkpoint(folder)
        photos: dict[tuple[int, int], Path] = {}
        for name in args.rows:
            width, height, options = ROWS[name]
            width, height = max(1, width // args.shrink), max(1, height // args.shrink)
            if (width, height) not in photos:
                photos[(width, height)] = make_photo(folder / f"photo_{width}x{height}.jpg", width, height)
            out = folder / f"out_{name}"
            seconds, peak, status = measure(ckpt, photos[(width, height)], options, out, args.timeout, args.data)
            table.add_row(f"{width}x{height} ({width * height / 1e6:g} MP)", " ".join(options), seconds, peak, status)
            print(f"{name}: {seconds} s, {peak} GiB, {status}", file=sys.stderr, flush=True)
    Console(width=200).print(table)
    print(f"python {sys.version.split()[0]}, torch threads: {os.environ.get('OMP_NUM_THREADS', 'default')}")


if __name__ == "__main__":
    main()
