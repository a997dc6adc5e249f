"""One table for our models and torchvision's: size, cost, speed, and what training runs reached.

    python scripts/benchmark.py [--models OPTION[,OVERRIDE...] ...] [--runs RUN_DIR ...]
        [--train-size 180x240] [--infer-size 180x240] [--flops-size 360x480] [--batch 8]
        [--steps 5] [--threads N] [--channels-last] [--compile] [--device cpu] [--json PATH] [--reference]
    python scripts/benchmark.py --loop "OVERRIDE ..." ["OVERRIDE ..." ...] [--steps 20] [--device cuda]
    python scripts/benchmark.py --deploy [--models ...] [--sizes 360x480 720x960] [--backends ...] [--batch 1] [--steps 20]

Each model is a model config option with optional overrides, e.g.
``fcn8s_mobilenet_v3,model.channels_last=true``; each run folder adds a row for its model (from
its checkpoint) with the val mIoU it reached and its time budget. Every model is measured in a
fresh process, one after the other, so peak memory is that model's own and no thread or compile
state leaks between rows:

- params; GFLOPs of one forward pass at ``--flops-size`` (``torch.utils.flop_counter``: 2 per
  multiply-add; interpolation and element-wise ops are not counted);
- train img/s: the system's own training step (loss with aux heads, backward, the configured
  optimizer) at ``--train-size``; the first step (compile included) is timed apart;
- inference img/s: eval-mode forward at ``--infer-size``;
- peak memory: how far the process's peak resident set rose above its level after imports (CPU),
  or ``max_memory_allocated`` (CUDA).

``--reference`` also times the from-scratch reference transposed conv against torch's. ``--loop``
compares the training loop with the model step alone (`tconvseg.tasks.loop_benchmark`). ``--deploy`` times
inference under each CPU runtime: eager, channels_last, torch.compile, ONNX Runtime fp32 and int8
(`tconvseg.tasks.deploy_benchmark`).

Ratios in parentheses are to the best peer (torchvision model): the peer run with the highest val
mIoU, else the peer with the fastest training. No speed target is asserted anywhere.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import shlex
import sys
import time
from collections.abc import Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import torch
from hydra import compose, initialize_config_dir
from omegaconf import OmegaConf
from rich.console import Console
from rich.table import Table
from torch.utils.flop_counter import FlopCounterMode

from tconvseg.entry import CONFIG_DIR
from tconvseg.training.runs import RunSummary, read_run

DEFAULT_MODELS = ["fcn8s_resnet18", "fcn8s_mobilenet_v3", "peer_lraspp_mobilenet_v3_large", "peer_deeplabv3_mobilenet_v3_large",
                  "peer_fcn_resnet50"]


@dataclass
class Row:
    label: str
    model_cfg: dict[str, Any]
    num_classes: int
    run: RunSummary | None = None
    speed: dict[str, float | None] = field(default_factory=dict)

    @property
    def is_peer(self) -> bool:
        return str(self.model_cfg.get("net", {}).get("_target_", "")).startswith("tconvseg.peers.")


def _size(text: str) -> tuple[int, int]:
    h, _, w = text.partition("x")
    return int(h), int(w)


def option_row(spec: str, common: Sequence[str], num_classes: int) -> Row:
    """A row for ``OPTION[,OVERRIDE...]``: the composed model config."""
    option, *overrides = spec.split(",")
    with initialize_config_dir(config_dir=str(CONFIG_DIR), version_base="1.3"):
        cfg = compose(config_name="train", overrides=[f"model={option}", *common, *overrides])
    return Row(spec, OmegaConf.to_container(cfg.model, resolve=True), num_classes)  # type: ignore[arg-type]


def build_for_benchmark(model_cfg: dict[str, Any], num_classes: int) -> Any:
    """The training system of ``model_cfg`` for ``num_classes`` classes, unweighted (no data needed)."""
    from tconvseg.data.datasets.info import synthetic_info
    from tconvseg.training.builders import build_system

    return build_system(OmegaConf.create({**model_cfg, "class_weighting": None}), synthetic_info(num_classes))


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize()


def measure(model_cfg: dict[str, Any], num_classes: int, opts: dict[str, Any]) -> dict[str, float | None]:
    """Size, FLOPs, train / inference speed and peak memory of one model (call in a fresh process)."""
    if opts["threads"]:
        torch.set_num_threads(opts["threads"])
    torch.manual_seed(0)
    device = torch.device(opts["device"])
    base_mib = _peak_mib(device) if device.type == "cpu" else 0.0  # imports (torch alone is hundreds of MiB)
    system = build_for_benchmark(model_cfg, num_classes).to(device)
    params = sum(p.numel() for p in system.parameters()) / 1e6
    system.net.eval()
    with torch.no_grad(), FlopCounterMode(display=False) as counter:
        system.net(torch.randn(1, 3, *opts["flops_size"], device=device))
    gflops = counter.get_total_flops() / 1e9

    system.setup("fit")  # compiles when the config asks for it
    system.train()
    optimizer = system.optimizer_factory(params=[p for p in system.parameters() if p.requires_grad])
    batch, (h, w) = opts["batch"], opts["train_size"]
    x, y = torch.randn(batch, 3, h, w, device=device), torch.randint(0, num_classes, (batch, h, w), device=device)
    times = []
    for _ in range(opts["steps"] + 1):
        start = time.perf_counter()
        loss, _ = system.loss_and_logits(x, y, "train")
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        _sync(device)
        times.append(time.perf_counter() - start)

    system.eval()
    x = torch.randn(batch, 3, *opts["infer_size"], device=device)
    infer = []
    with torch.inference_mode():
        for _ in range(opts["steps"] + 1):
            start = time.perf_counter()
            system(x)
            _sync(device)
            infer.append(time.perf_counter() - start)
    return {
        "params_m": params, "gflops": gflops, "first_step_s": times[0], "train_ips": batch * opts["steps"] / sum(times[1:]),
        "infer_ips": batch * opts["steps"] / sum(infer[1:]),
        "peak_mib": None if base_mib is None else _peak_mib(device) - base_mib,
    }


def _peak_mib(device: torch.device) -> float | None:
    if device.type == "cuda":
        return torch.cuda.max_memory_allocated(device) / 2**20
    try:
        import resource
    except ImportError:  # not on Windows
        return None
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / (2**20 if sys.platform == "darwin" else 2**10)


def measure_isolated(model_cfg: dict[str, Any], num_classes: int, opts: dict[str, Any]) -> dict[str, float | None]:
    """`measure` in a fresh (spawned) process."""
    with ProcessPoolExecutor(max_workers=1, mp_context=multiprocessing.get_context("spawn")) as pool:
        return pool.submit(measure, model_cfg, num_classes, opts).result()


def _best_peer(rows: list[Row]) -> Row | None:
    peers = [r for r in rows if r.is_peer]
    scored = [r for r in peers if r.run and r.run.best_val_miou is not None]
    if scored:
        return max(scored, key=lambda r: r.run.best_val_miou)  # type: ignore[union-attr]
    return max(peers, key=lambda r: r.speed.get("train_ips") or 0.0, default=None)


def _cell(value: float | None, fmt: str, ref: float | None = None, delta: bool = False) -> str:
    """``value`` formatted, then ``(ratio×)`` to ``ref``, or with ``delta`` the difference in ``value``'s own units."""
    if value is None:
        return "–"
    text = format(value, fmt)
    if ref:
        text += f" ({value - ref:+.1f})" if delta else f" ({value / ref:.2f}×)"
    return text


def render(rows: list[Row], opts: dict[str, Any]) -> Table:
    """The table: one row per model option or run, ratios to the best peer in parentheses."""
    (fh, fw), (th, tw), (ih, iw) = opts["flops_size"], opts["train_size"], opts["infer_size"]
    best = _best_peer(rows)
    title = f"{opts['device']}, {opts['threads'] or torch.get_num_threads()} threads, batch {opts['batch']}, {opts['steps']} timed steps"
    if best is not None:
        title += f"; (ratio) to the best peer: {best.label}"
    table = Table(title=title)
    columns = ["model / run", "kind", "params M", f"GFLOPs {fh}×{fw}", f"train img/s {th}×{tw}", f"infer img/s {ih}×{iw}",
               "first step s", "peak MiB Δ", "val mIoU best %", "val mIoU final %", "train mIoU %", "budget min", "spent min"]
    for column in columns:
        table.add_column(column, justify="left" if column == "model / run" else "right")
    ref = best.speed if best else {}
    ref_miou = best.run.best_val_miou if best and best.run else None
    for row in rows:
        s, run = row.speed, row.run
        table.add_row(
            row.label, "peer" if row.is_peer else "ours",
            _cell(s.get("params_m"), ".2f", ref.get("params_m")), _cell(s.get("gflops"), ".2f", ref.get("gflops")),
            _cell(s.get("train_ips"), ".1f", ref.get("train_ips")), _cell(s.get("infer_ips"), ".1f", ref.get("infer_ips")),
            _cell(s.get("first_step_s"), ".2f"), _cell(s.get("peak_mib"), ".0f"),
            _cell(None if run is None or run.best_val_miou is None else 100 * run.best_val_miou, ".1f",
                  None if ref_miou is None else 100 * ref_miou, delta=True) if run else "–",
            _cell(run.final_val_miou and 100 * run.final_val_miou, ".1f") if run else "–",
            _cell(run.final_train_miou and 100 * run.final_train_miou, ".1f") if run else "–",
            _cell(run.budget_s and run.budget_s / 60, ".1f") if run else "–",
            _cell(run.spent_s and run.spent_s / 60, ".1f") if run else "–",
        )
    return table


def reference_table(device: str) -> Table:
    """The from-scratch reference transposed conv against ``F.conv_transpose2d``, forward, decoder-sized."""
    import torch.nn.functional as F

    from tconvseg.nn.reference import conv_transpose2d_reference

    table = Table(title="transposed conv k3 s2 p1, 64->64 ch, batch 8, 90x120 -> 180x240, forward")
    for column in ("implementation", "ms / call"):
        table.add_column(column, justify="right")
    x, weight = torch.randn(8, 64, 90, 120, device=device), torch.randn(64, 64, 3, 3, device=device)
    for name, fn in [("torch.nn.functional.conv_transpose2d", F.conv_transpose2d), ("tconvseg reference", conv_transpose2d_reference)]:
        fn(x, weight, None, 2, 1, 1)
        start = time.perf_counter()
        for _ in range(3):
            fn(x, weight, None, 2, 1, 1)
        _sync(torch.device(device))
        table.add_row(name, f"{(time.perf_counter() - start) / 3 * 1000:.1f}")
    return table


def build_parser() -> argparse.ArgumentParser:
    """The command line of ``python scripts/benchmark.py`` (the docs' commands are parsed with it in the tests)."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", nargs="*", default=None, help="model options, each OPTION[,OVERRIDE...]")
    parser.add_argument("--runs", nargs="*", default=[], help="training run folders (logs/train/runs/...)")
    parser.add_argument("--num-classes", type=int, default=11, help="classes of --models rows (CamVid: 11)")
    parser.add_argument("--train-size", default="180x240")
    parser.add_argument("--infer-size", default="180x240")
    parser.add_argument("--flops-size", default="360x480")
    parser.add_argument("--batch", type=int, default=None, help="default 8; --deploy: 1")
    parser.add_argument("--steps", type=int, default=None, help="default 5; --deploy: 20 timed calls")
    parser.add_argument("--threads", type=int, default=None)
    parser.add_argument("--channels-last", action="store_true", help="model.channels_last=true for every --models row")
    parser.add_argument("--compile", action="store_true", help="model.compile=true for every --models row")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--json", type=Path, default=None, help="also write the rows here")
    parser.add_argument("--reference", action="store_true", help="also time the reference transposed conv")
    parser.add_argument("--loop", nargs="+", default=None, metavar="OVERRIDES",
                        help="loop mode: for each quoted set of training overrides, the step alone vs the full training loop")
    parser.add_argument("--deploy", action="store_true", help="deploy mode: inference images/s per CPU runtime (eager ... onnx_int8_qoperator)")
    parser.add_argument("--sizes", nargs="+", default=None, help="--deploy: network input sizes HxW (default 360x480 720x960)")
    parser.add_argument("--backends", nargs="+", default=None,
                        help="--deploy: some of eager channels_last compile onnx_fp32 onnx_int8_qdq onnx_int8_qoperator")
    parser.add_argument("--record", type=Path, default=None, help="--deploy: also write the table as a results-page table record")
    parser.add_argument("--machine", default=None, help="--record: the machine, in words (default: cores, processor, torch)")
    return parser


def main(argv: Sequence[str] | None = None) -> list[Row] | list[dict[str, Any]]:
    """``python scripts/benchmark.py``: measure, print the table, optionally write JSON; returns the rows."""
    args = build_parser().parse_args(argv)
    args.batch = args.batch or (1 if args.deploy else 8)
    args.steps = args.steps or (20 if args.deploy else 5)
    if args.loop:
        return _loop_mode(args)
    if args.deploy:
        return _deploy_mode(args, argv)
    opts = {"train_size": _size(args.train_size), "infer_size": _size(args.infer_size), "flops_size": _size(args.flops_size),
            "batch": args.batch, "steps": args.steps, "threads": args.threads, "device": args.device}
    common = [o for flag, o in ((args.channels_last, "model.channels_last=true"), (args.compile, "model.compile=true")) if flag]
    models = DEFAULT_MODELS if args.models is None and not args.runs else (args.models or [])
    rows = [option_row(spec, common, args.num_classes) for spec in models]
    for folder in args.runs:
        run = read_run(folder)
        rows.append(Row(run.label, run.model_cfg, run.num_classes, run=run))
    measured: dict[str, dict[str, float | None]] = {}
    for row in rows:  # runs of one model share one measurement
        key = json.dumps([row.model_cfg, row.num_classes], sort_keys=True, default=str)
        if key not in measured:
            measured[key] = measure_isolated(row.model_cfg, row.num_classes, opts)
        row.speed = measured[key]
    console = Console(width=250)
    console.print(render(rows, opts))
    if args.reference:
        console.print(reference_table(args.device))
    if args.json:
        args.json.write_text(json.dumps([{**asdict(r), "is_peer": r.is_peer} for r in rows], indent=2, default=str))
    return rows


def _deploy_mode(args: argparse.Namespace, argv: Sequence[str] | None) -> list[dict[str, Any]]:
    from tconvseg.tasks.deploy_benchmark import BACKENDS, DEFAULT_DEPLOY_MODELS, deploy_rows, deploy_table, table_record

    opts = {"batch": args.batch, "steps": args.steps, "threads": args.threads}
    sizes = [_size(s) for s in (args.sizes or ["360x480", "720x960"])]
    rows = deploy_rows(args.models or DEFAULT_DEPLOY_MODELS, sizes, args.backends or BACKENDS, opts, args.num_classes)
    Console(width=250).print(deploy_table(rows, opts))
    if args.json:
        args.json.write_text(json.dumps(rows, indent=2))
    if args.record:
        record = table_record(rows, opts, shlex.join(["python", "scripts/benchmark.py", *(sys.argv[1:] if argv is None else argv)]),
                              args.machine or _machine(), _git_commit(), table_id=args.record.stem)
        args.record.write_text(json.dumps(record, indent=1, ensure_ascii=False) + "\n")
    return rows


def _machine() -> str:
    import os
    import platform

    return f"{os.cpu_count()} cores, {platform.processor() or platform.machine()}, torch {torch.__version__}"


def _git_commit() -> str | None:
    import subprocess

    try:
        return subprocess.run(["git", "rev-parse", "HEAD"], capture_output=True, text=True, check=True).stdout.strip() or None
    except (OSError, subprocess.CalledProcessError):
        return None


def _loop_mode(args: argparse.Namespace) -> list[dict[str, Any]]:
    from tconvseg.tasks.loop_benchmark import loop_measure, loop_table

    rows = [loop_measure(spec.split(), steps=args.steps, device=args.device, threads=args.threads) for spec in args.loop]
    Console(width=250).print(loop_table(rows))
    if args.json:
        args.json.write_text(json.dumps(rows, indent=2, default=str))
    return rows


if __name__ == "__main__":
    main()
