"""The deployment speed table: images/s and latency of each model under each CPU runtime, as ratios to torch eager fp32.

    python scripts/benchmark.py --deploy [--models OPTION[,OVERRIDE...] ...] [--sizes 360x480 720x960]
        [--backends eager channels_last compile onnx_fp32 onnx_int8_qdq onnx_int8_qoperator] [--batch 1] [--steps 20] [--threads N] [--json PATH]

Backends: ``eager`` (the network in eval mode under ``torch.inference_mode``), ``channels_last`` (the same with
NHWC weights and input), ``compile`` (``torch.compile``, default mode: its compile time is reported apart),
``onnx_fp32`` (the network exported as by ``tconvseg-export format=onnx``, run by ONNX Runtime) and
``onnx_int8_qdq`` / ``onnx_int8_qoperator`` (that file statically quantised as by ``quantize=int8``, in
``int8_format=qdq`` / ``qoperator``; its activation ranges come from random inputs here — speed does not depend
on them; the accuracy cost is ``tconvseg-export``'s to measure).

Every (model, size, backend) is measured in a fresh process, one after the other: a warm-up call, then
``--steps`` timed calls; latency is the median call, images/s the batch over the mean call. Sizes are the
network's input (the CamVid recipe predicts a 360x480 frame from a 180x240 input: its ``scale: 0.5``).
A backend that fails (e.g. no C++ compiler for ``compile``) gets a row saying why. No speed is asserted.
"""

from __future__ import annotations

import multiprocessing
import statistics
import tempfile
import time
from collections.abc import Sequence
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import Any

import torch
from rich.table import Table

BACKENDS = ("eager", "channels_last", "compile", "onnx_fp32", "onnx_int8_qdq", "onnx_int8_qoperator")
#: The recipe's network and the torchvision peers a deployment would weigh it against.
DEFAULT_DEPLOY_MODELS = ["fcn8s_efficientnet_lite0", "peer_lraspp_mobilenet_v3_large", "peer_deeplabv3_mobilenet_v3_large"]


def _runner(net: torch.nn.Module, backend: str, example: torch.Tensor, workdir: Path) -> Any:
    """A callable ``x -> output`` running ``net`` under ``backend`` (export, quantisation or compilation done here)."""
    if backend == "eager":
        return net
    if backend == "channels_last":
        net = net.to(memory_format=torch.channels_last)
        return lambda x: net(x.contiguous(memory_format=torch.channels_last))
    if backend == "compile":
        return torch.compile(net)
    if backend.startswith("onnx_"):
        from tconvseg.inference.int8 import onnx_session, quantize_int8
        from tconvseg.tasks.export import export_onnx

        path = workdir / "net.onnx"
        with torch.no_grad():
            export_onnx(net, torch.randn(2, *example.shape[1:]), path, opset=18)
        if backend.startswith("onnx_int8"):
            generator = torch.Generator().manual_seed(0)
            images = [torch.randn(example.shape, generator=generator).numpy() for _ in range(4)]
            quant_format = "qoperator" if backend.endswith("qoperator") else "qdq"
            quantize_int8(path, workdir / "net.int8.onnx", images, quant_format=quant_format)
            path = workdir / "net.int8.onnx"
        session = onnx_session(path)
        return lambda x: session.run(None, {"image": x.numpy()})[0]
    raise ValueError(f"backend {backend!r} is unknown; expected one of {', '.join(BACKENDS)}")


def measure_backend(model_cfg: dict[str, Any], num_classes: int, backend: str, size: tuple[int, int], opts: dict[str, Any]) -> dict[str, Any]:
    """``{"ips", "p50_ms", "setup_s", "error"}`` of one model under one backend at one input size (call in a fresh process)."""
    from tconvseg.tasks.benchmark import build_for_benchmark

    if opts.get("threads"):
        torch.set_num_threads(opts["threads"])
    torch.manual_seed(0)
    net = build_for_benchmark(model_cfg, num_classes).net.eval()
    x = torch.randn(opts["batch"], 3, *size)
    try:
        with tempfile.TemporaryDirectory() as tmp, torch.inference_mode():
            start = time.perf_counter()
            run = _runner(net, backend, x, Path(tmp))
            run(x)  # warm-up: compilation, ONNX Runtime's first-call allocations
            setup = time.perf_counter() - start
            times = []
            for _ in range(opts["steps"]):
                start = time.perf_counter()
                run(x)
                times.append(time.perf_counter() - start)
    except Exception as err:  # noqa: BLE001 -- a row that says why, not a table lost to one backend
        return {"ips": None, "p50_ms": None, "setup_s": None, "error": f"{type(err).__name__}: {str(err).splitlines()[0][:160]}"}
    return {"ips": opts["batch"] * len(times) / sum(times), "p50_ms": 1000 * statistics.median(times), "setup_s": setup, "error": None}


def deploy_rows(models: Sequence[str], sizes: Sequence[tuple[int, int]], backends: Sequence[str], opts: dict[str, Any],
                num_classes: int = 11) -> list[dict[str, Any]]:
    """One row per (model, size, backend), each measured in a fresh spawned process; ``ratio`` to eager fp32 of that model and size."""
    from tconvseg.tasks.benchmark import option_row

    unknown = [b for b in backends if b not in BACKENDS]
    if unknown:
        raise ValueError(f"--backends {unknown} unknown; expected some of {', '.join(BACKENDS)}")
    rows = []
    context = multiprocessing.get_context("spawn")
    for spec in models:
        model_cfg = option_row(spec, [], num_classes).model_cfg
        for size in sizes:
            eager = None
            for backend in backends:
                with ProcessPoolExecutor(max_workers=1, mp_context=context) as pool:
                    result = pool.submit(measure_backend, model_cfg, num_classes, backend, tuple(size), opts).result()
                if backend == "eager":
                    eager = result["ips"]
                ratio = result["ips"] / eager if result["ips"] and eager else None
                rows.append({"model": spec, "size": list(size), "backend": backend, **result, "ratio": ratio})
    return rows


def deploy_table(rows: Sequence[dict[str, Any]], opts: dict[str, Any]) -> Table:
    """The rows as a rich table."""
    table = Table(title=f"Deployment speed, batch {opts['batch']}, {opts.get('threads') or torch.get_num_threads()} thread(s), "
                        f"{opts['steps']} timed calls (ratio: to eager fp32 of the same model and size)")
    for column in ("model", "input", "backend", "images/s", "ratio", "latency p50 (ms)", "setup (s)"):
        table.add_column(column, justify="left" if column in ("model", "input", "backend") else "right")
    for row in rows:
        h, w = row["size"]
        if row["error"]:
            table.add_row(row["model"], f"{h}x{w}", row["backend"], "failed", "", "", row["error"])
            continue
        table.add_row(row["model"], f"{h}x{w}", row["backend"], f"{row['ips']:.2f}", f"{row['ratio']:.2f}x" if row["ratio"] else "",
                      f"{row['p50_ms']:.1f}", f"{row['setup_s']:.1f}")
    return table


def table_record(rows: Sequence[dict[str, Any]], opts: dict[str, Any], command: str, machine: str, commit: str | None,
                 table_id: str = "deploy_speed") -> dict[str, Any]:
    """The rows as a results-page table record (``docs/records/tables/<table_id>.json``, format in ``docs/records/README.md``)."""
    cells = []
    for row in rows:
        h, w = row["size"]
        if row["error"]:
            cells.append([f"`{row['model']}`", f"{h}\u00d7{w}", row["backend"], "failed", "", "", row["error"]])
            continue
        cells.append([f"`{row['model']}`", f"{h}\u00d7{w}", row["backend"], f"{row['ips']:.2f}", f"{row['ratio']:.2f}\u00d7",
                      f"{row['p50_ms']:.1f}", f"{row['setup_s']:.1f}"])
    return {
        "table": table_id,
        "what": "Deployment speed on the CPU: images/s and latency per model, input size and runtime, ratios to torch eager fp32",
        "source": "measured: written by the command below (scripts/benchmark.py --deploy --record)",
        "provenance": {
            "command": command, "machine": machine, "date": time.strftime("%Y-%m-%d", time.gmtime()), "commit": commit,
            "time_utc": time.strftime("%H:%M", time.gmtime()),
            "note": f"batch {opts['batch']}, {opts['steps']} timed calls after a warm-up, each row in a fresh process; untrained weights",
        },
        "columns": ["model option", "input", "runtime", "images/s", "× eager fp32", "latency p50 (ms)", "setup (s)"],
        "align": ["---", "---", "---", "---:", "---:", "---:", "---:"],
        "rows": [{"cells": c} for c in cells],
    }
