"""What using a trained model costs: predict's images/s on a folder, ONNX export and onnxruntime's images/s (a table).

    python scripts/bench_use.py --ckpt NAME=PATH [NAME=PATH ...] --images DIR [--limit N] [--odd 361 479] [--json rows.json]

For each checkpoint: ``scripts/predict.py`` in a fresh process on the first ``--limit`` images of ``DIR`` (end to end:
start-up, model load, decoding, forward, the mask and overlay files), its wall time and images/s, and images/s without
the start-up (the process's time less that of the same command on one image); ``scripts/export.py format=onnx`` (wall
time, the largest |ONNX − PyTorch| at the export's sizes and at the odd size ``--odd``), then onnxruntime's images/s,
batch 1, on the folder's size (the first image's) and on the odd size. Threads: what the processes pick (all cores).
No target is asserted; run it on an otherwise idle machine.
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from PIL import Image
from rich.console import Console
from rich.table import Table

ROOT = Path(__file__).resolve().parents[1]
QUIET = ["callbacks=none", "+trainer.enable_progress_bar=false"]


def _timed(args: list[str], cwd: Path) -> float:
    start = time.perf_counter()
    result = subprocess.run(args, capture_output=True, text=True, cwd=cwd)
    if result.returncode != 0:
        raise RuntimeError(f"{' '.join(args[1:3])} failed (exit {result.returncode}):\n{result.stderr[-2000:]}")
    return time.perf_counter() - start


def predict_seconds(ckpt: str, images: Path, out: Path, data: str) -> float:
    """Wall seconds of one ``scripts/predict.py`` process on ``images`` (a folder or a file)."""
    return _timed([sys.executable, str(ROOT / "scripts" / "predict.py"), f"ckpt_path={ckpt}", f"input={images}",
                   f"output_dir={out}", f"data={data}", *QUIET], out.parent)


def onnx_images_per_s(model: Path, size: tuple[int, int], repeats: int) -> float:
    """onnxruntime images/s, batch 1, at ``size`` (after two warm-up runs)."""
    import onnxruntime

    session = onnxruntime.InferenceSession(str(model), providers=["CPUExecutionProvider"])
    name = session.get_inputs()[0].name
    x = np.random.default_rng(0).standard_normal((1, 3, *size), dtype=np.float32)
    for _ in range(2):
        session.run(None, {name: x})
    start = time.perf_counter()
    for _ in range(repeats):
        session.run(None, {name: x})
    return repeats / (time.perf_counter() - start)


def measure(name: str, ckpt: str, images: list[Path], odd: tuple[int, int], data: str, work: Path) -> dict[str, object]:
    folder, one = work / f"{name}_in", work / f"{name}_one"
    folder.mkdir()
    one.mkdir()
    for image in images:
        shutil.copy(image, folder / image.name)
    shutil.copy(images[0], one / images[0].name)
    whole = predict_seconds(ckpt, folder, work / f"{name}_out", data)
    single = predict_seconds(ckpt, one, work / f"{name}_out1", data)
    onnx = work / f"{name}.onnx"
    export_s = _timed([sys.executable, str(ROOT / "scripts" / "export.py"), f"ckpt_path={ckpt}", "format=onnx", f"output={onnx}",
                       f"sizes=[[97,131],[{odd[0]},{odd[1]}]]"], work)
    report = json.loads((onnx.parent / "export_report.json").read_text())
    height, width = Image.open(images[0]).size[::-1]
    return {
        "name": name, "images": len(images), "size": [height, width], "predict_s": whole,
        "predict_img_s": len(images) / whole,
        "predict_img_s_after_startup": (len(images) - 1) / max(whole - single, 1e-9),
        "export_s": export_s, "onnx_max_abs_diff": max(row["max_abs_diff"] for row in report["parity"]),
        "onnx_img_s": onnx_images_per_s(onnx, (height, width), 20), "onnx_img_s_odd": onnx_images_per_s(onnx, odd, 20),
    }


def main(argv: list[str] | None = None) -> list[dict[str, object]]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--ckpt", nargs="+", required=True, help="NAME=PATH, one per model")
    parser.add_argument("--images", type=Path, required=True, help="a folder of images of one size (e.g. CamVid's val/)")
    parser.add_argument("--limit", type=int, default=50)
    parser.add_argument("--odd", type=int, nargs=2, default=[361, 479], metavar=("H", "W"))
    parser.add_argument("--data", default="camvid", help="the data config the checkpoints were trained with")
    parser.add_argument("--json", type=Path)
    args = parser.parse_args(argv)
    images = sorted(p for p in args.images.iterdir() if p.suffix.lower() in {".png", ".jpg", ".jpeg"})[: args.limit]
    if len(images) < 2:
        raise SystemExit(f"--images {args.images}: {len(images)} images found; expected at least 2 (.png / .jpg)")
    rows = []
    for spec in args.ckpt:
        name, sep, path = spec.partition("=")
        if not sep or not Path(path).is_file():
            raise SystemExit(f"--ckpt {spec!r}: expected NAME=PATH with PATH a checkpoint file")
        with tempfile.TemporaryDirectory() as tmp:
            rows.append(measure(name, path, images, tuple(args.odd), args.data, Path(tmp)))
    h, w = rows[0]["size"]
    table = Table(title=f"Using a trained model: predict on {len(images)} images of {h}×{w}, ONNX export, onnxruntime (batch 1)")
    for column in ["model", "predict s", "predict img/s", "img/s after start-up", "export s", "ONNX max |Δ|",
                   f"onnxruntime img/s {h}×{w}", f"onnxruntime img/s {args.odd[0]}×{args.odd[1]}"]:
        table.add_column(column, justify="right")
    for r in rows:
        table.add_row(str(r["name"]), f"{r['predict_s']:.1f}", f"{r['predict_img_s']:.2f}", f"{r['predict_img_s_after_startup']:.2f}",
                      f"{r['export_s']:.1f}", f"{r['onnx_max_abs_diff']:.1e}", f"{r['onnx_img_s']:.1f}", f"{r['onnx_img_s_odd']:.1f}")
    Console(width=200).print(table)
    if args.json:
        args.json.write_text(json.dumps(rows, indent=2))
    return rows


if __name__ == "__main__":
    main()
