"""The gap between the model and the training loop: ``python scripts/benchmark.py --loop``.

For each set of training overrides (a model option and data options, or an experiment), in one process:

- **step alone**: images/s of the system's training step (loss with aux heads, backward, optimizer; under
  bf16 autocast when ``trainer.precision`` is ``bf16-mixed``) on
  synthetic tensors already on the device, shaped like the loop's batches;
- **full loop**: images/s of the training loop as Lightning drives it (loader, transfer to the device,
  the datamodule's ``on_after_batch_transfer`` — the device augmentation — and the same step), epoch
  boundaries (a new loader iterator) included;
- their ratio, and on CUDA the GPU's busy share sampled during the loop (``torch.cuda.utilization``,
  NVML through ``nvidia-ml-py``) and the peak memory.

No speed target is asserted anywhere: this prints a table.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator, Sequence
from types import SimpleNamespace
from typing import Any

import torch
from hydra import compose, initialize_config_dir
from lightning.fabric.utilities.apply_func import move_data_to_device
from rich.table import Table

from tconvseg.entry import CONFIG_DIR


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


class _BusySampler:
    """Samples ``torch.cuda.utilization`` every ``interval`` seconds while running (CUDA with NVML only)."""

    def __init__(self, device: torch.device, interval: float = 0.1) -> None:
        self.device, self.interval, self.samples = device, interval, []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.is_set():
            self.samples.append(float(torch.cuda.utilization(self.device)))
            time.sleep(self.interval)

    def __enter__(self) -> _BusySampler:
        if self.device.type == "cuda":
            try:
                torch.cuda.utilization(self.device)
            except Exception:  # noqa: BLE001 - no NVML (nvidia-ml-py missing): report no utilisation
                return self
            self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join()

    @property
    def busy(self) -> float | None:
        return sum(self.samples) / len(self.samples) if self.samples else None


def _batches(datamodule: Any) -> Iterator[Any]:
    """Training batches forever, a new epoch (sampler epoch, loader iterator) after each pass."""
    epoch = 0
    while True:
        loader = datamodule.train_dataloader()
        if hasattr(loader.sampler, "set_epoch"):
            loader.sampler.set_epoch(epoch)
        yield from loader
        epoch += 1


def loop_measure(overrides: Sequence[str], steps: int = 20, warmup: int = 3, device: str = "cpu", threads: int | None = None) -> dict[str, Any]:
    """Measure the step alone and the full loop of the training config composed with ``overrides`` (see the module doc)."""
    if threads:
        torch.set_num_threads(threads)
    from tconvseg.training.builders import build_datamodule, build_system, class_weights_for

    torch.manual_seed(0)
    dev = torch.device(device)
    with initialize_config_dir(config_dir=str(CONFIG_DIR), version_base="1.3"):
        cfg = compose(config_name="train", overrides=list(overrides))
    datamodule = build_datamodule(cfg)
    datamodule.trainer = SimpleNamespace(training=True, current_epoch=0, world_size=1, strategy=SimpleNamespace(root_device=dev))
    system = build_system(cfg.model, datamodule.info, class_weights_for(cfg.model, datamodule)).to(dev)
    system.setup("fit")
    system.train()
    optimizer = system.optimizer_factory(params=[p for p in system.parameters() if p.requires_grad])

    precision = str(cfg.trainer.get("precision") or "32")
    autocast = torch.autocast(dev.type, dtype=torch.bfloat16, enabled=precision.startswith("bf16"))  # as Lightning's bf16-mixed

    def step(images: torch.Tensor, masks: torch.Tensor) -> None:
        with autocast:
            loss, _ = system.loss_and_logits(images, masks, "train")
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()

    if dev.type == "cuda":
        torch.cuda.reset_peak_memory_stats(dev)
    batches, seen = _batches(datamodule), 0
    with _BusySampler(dev) as sampler:
        for i in range(warmup + steps):
            if i == warmup:
                _sync(dev)
                start, seen = time.perf_counter(), 0
            batch = move_data_to_device(next(batches), dev)
            images, masks = datamodule.on_after_batch_transfer(batch, 0)
            step(images, masks)
            seen += images.shape[0]
        _sync(dev)
        loop_ips = seen / (time.perf_counter() - start)

    x = torch.randn_like(images)
    y = masks.clone()
    for i in range(warmup + steps):
        if i == warmup:
            _sync(dev)
            start = time.perf_counter()
        step(x, y)
    _sync(dev)
    step_ips = x.shape[0] * steps / (time.perf_counter() - start)
    return {
        "overrides": " ".join(overrides), "batch": tuple(images.shape), "augment_on": datamodule.augment_on,
        "step_ips": step_ips, "loop_ips": loop_ips, "ratio": loop_ips / step_ips, "gpu_busy": sampler.busy,
        "peak_mib": torch.cuda.max_memory_allocated(dev) / 2**20 if dev.type == "cuda" else None,
    }


def loop_table(rows: Sequence[dict[str, Any]]) -> Table:
    table = Table(title="Training loop vs the model step alone")
    for column in ("overrides", "augment_on", "batch", "step alone img/s", "full loop img/s", "loop / step", "GPU busy %", "peak MiB"):
        table.add_column(column, justify="left" if column == "overrides" else "right")
    for r in rows:
        table.add_row(
            r["overrides"] or "(config defaults)", r["augment_on"], "x".join(map(str, r["batch"])), f"{r['step_ips']:.1f}", f"{r['loop_ips']:.1f}",
            f"{r['ratio']:.2f}", "–" if r["gpu_busy"] is None else f"{r['gpu_busy']:.0f}", "–" if r["peak_mib"] is None else f"{r['peak_mib']:.0f}",
        )
    return table
