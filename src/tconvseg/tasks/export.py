"""``export(cfg)``: a checkpoint's network as ONNX or TorchScript taking any H and W; ``main()`` is ``tconvseg-export``.

The exported model maps ``image (N, 3, H, W)`` float (normalised as in training) to ``logits
(N, K, H, W)``, for every ``H, W`` at or above the encoder's minimum: each matched transposed conv
runs with its largest ``output_padding`` and is cropped to the runtime size of its target (see
``tconvseg.nn.matched``), so no size is baked into the graph. ``export_report.json`` beside the
file gives the largest difference to PyTorch at each of ``sizes`` (odd ones included).
"""

from __future__ import annotations

import json
import logging
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch
from omegaconf import DictConfig

from tconvseg.entry import run_hydra
from tconvseg.inference.restore import restore, set_up_inference
from tconvseg.tasks.export_int8 import QuantizationError, check_int8_options, export_int8
from tconvseg.training.atomic import atomic_write_text

log = logging.getLogger(__name__)

FORMATS = ("onnx", "torchscript")
_EXTRA_HINT = "install the export extra: pip install 'tconvseg[export]' (onnx, onnxscript, onnxruntime)"


class ParityError(RuntimeError):
    """The exported model's output differs from PyTorch's by more than the tolerance."""


def export_onnx(net: torch.nn.Module, example: torch.Tensor, output: Path, opset: int | None) -> Callable[[torch.Tensor], np.ndarray]:
    """Write ``net`` as ONNX with dynamic batch, height and width; return a runner (onnxruntime) of the file."""
    try:
        import onnxruntime
    except ImportError as err:
        raise ImportError(f"format=onnx needs onnxruntime for its parity check: {_EXTRA_HINT}") from err
    dynamic = {0: torch.export.Dim.DYNAMIC, 2: torch.export.Dim.DYNAMIC, 3: torch.export.Dim.DYNAMIC}
    program = torch.export.export(net, (example,), dynamic_shapes=(dynamic,), strict=False)
    torch.onnx.export(
        program, (example,), str(output), dynamo=True, opset_version=opset, input_names=["image"], output_names=["logits"],
        external_data=False, verbose=False,
    )
    session = onnxruntime.InferenceSession(str(output), providers=["CPUExecutionProvider"])
    return lambda x: session.run(None, {"image": x.numpy()})[0]


def export_torchscript(net: torch.nn.Module, example: torch.Tensor, output: Path) -> Callable[[torch.Tensor], np.ndarray]:
    """Write ``net`` traced to TorchScript (sizes are traced as runtime values); return a runner of the saved file."""
    with warnings.catch_warnings():
        # The size checks of the eager model become constants in the trace, true for the example;
        # the parity check below runs the file at other sizes.
        warnings.filterwarnings("ignore", category=torch.jit.TracerWarning)
        warnings.filterwarnings("ignore", message=".*torch.jit.* is deprecated.*", category=FutureWarning)
        torch.jit.trace(net, example).save(str(output))
        loaded = torch.jit.load(str(output), map_location="cpu")
    return lambda x: loaded(x).detach().numpy()


def parity(net: torch.nn.Module, run: Callable[[torch.Tensor], np.ndarray], sizes: list[tuple[int, int]], seed: int = 0) -> list[dict[str, Any]]:
    """Per size: the output shape, the largest ``|exported - PyTorch|`` and the share of pixels with the same argmax."""
    rows = []
    generator = torch.Generator().manual_seed(seed)
    for h, w in sizes:
        x = torch.randn(2, 3, h, w, generator=generator)
        with torch.no_grad():
            expected = net(x).numpy()
        got = run(x)
        if got.shape != expected.shape:
            raise ParityError(f"the exported model returned shape {got.shape} for input {tuple(x.shape)}; PyTorch returns {expected.shape}")
        rows.append({
            "size": [h, w],
            "output_shape": list(got.shape),
            "max_abs_diff": float(np.abs(got - expected).max()),
            "same_argmax": float((got.argmax(1) == expected.argmax(1)).mean()),
        })
    return rows


def export(cfg: DictConfig) -> tuple[dict[str, Any], dict[str, Any]]:
    """Export ``cfg.ckpt_path`` to ``cfg.output`` as ``cfg.format``; write and return the parity report.

    With ``quantize=int8`` (ONNX) also ``<stem>.int8.onnx``, statically quantised, when its mIoU loss on a split
    the model did not train on is within ``int8_max_miou_drop`` (`tconvseg.tasks.export_int8`).

    Raises:
        ValueError: unknown format, or a size below the model's minimum. ImportError: the export
            extra is missing. ParityError: a difference above ``cfg.tolerance`` (after writing the report).
            QuantizationError: the int8 model loses too much (after writing the report; the fp32 file stays).
    """
    if cfg.format not in FORMATS:
        raise ValueError(f"format={cfg.format!r} is not supported; expected one of {', '.join(FORMATS)} (e.g. format=onnx)")
    quantize = cfg.get("quantize")
    if quantize not in (None, "int8"):
        raise ValueError(f"quantize={quantize!r} is invalid; expected null (fp32 only) or int8 (format=onnx)")
    int8_options = check_int8_options(cfg) if quantize == "int8" else None
    restored = restore(cfg, set_up_inference(cfg))  # matmul precision set: the parity check's PyTorch side
    net = restored.system.net.eval()
    min_h, min_w = getattr(net, "min_input_size", (1, 1))
    sizes = [(int(h), int(w)) for h, w in cfg.sizes]
    too_small = [s for s in [*sizes, tuple(cfg.example_size)] if s[0] < min_h or s[1] < min_w]
    if too_small:
        raise ValueError(f"sizes {too_small} are below this model's minimum input {min_h}x{min_w}; expected sizes and example_size at or above it")
    output = Path(cfg.output) if cfg.get("output") else Path(restored.path).with_suffix(".onnx" if cfg.format == "onnx" else ".pt")
    output.parent.mkdir(parents=True, exist_ok=True)
    example = torch.randn(2, 3, *cfg.example_size)  # batch 2: a batch of 1 would be taken for a fixed size
    with torch.no_grad():
        run = export_onnx(net, example, output, cfg.get("opset")) if cfg.format == "onnx" else export_torchscript(net, example, output)
    rows = parity(net, run, sizes)
    report = {
        "checkpoint": str(Path(restored.path).resolve()), "format": cfg.format, "output": str(output.resolve()),
        "opset": cfg.get("opset") if cfg.format == "onnx" else None, "input": "image (N, 3, H, W) float32, normalised as in training",
        "output_tensor": f"logits (N, {restored.info.num_classes}, H, W)", "class_names": list(restored.info.class_names),
        "min_input_size": [min_h, min_w], "tolerance": cfg.tolerance, "parity": rows,
    }
    report_path = output.parent / "export_report.json"
    atomic_write_text(json.dumps(report, indent=2), report_path)
    worst = max(row["max_abs_diff"] for row in rows)
    log.info("Wrote %s and %s; largest |difference| to PyTorch: %.2e", output, report_path, worst)
    if worst > cfg.tolerance:
        raise ParityError(f"the exported {output} differs from PyTorch by up to {worst:.3g} (> tolerance={cfg.tolerance}); see {report_path}")
    if int8_options is not None:
        report["int8"] = export_int8(cfg, restored, output, int8_options)
        atomic_write_text(json.dumps(report, indent=2), report_path)
        if report["int8"]["written"] is None:
            raise QuantizationError(f"{report['int8']['refused']} (figures in {report_path})")
        log.info("Wrote %s (int8, %.1f MB against %.1f MB)", report["int8"]["written"], report["int8"]["int8_mb"], report["int8"]["fp32_mb"])
    return report, {"cfg": cfg, "net": net, "output": output, "report_path": report_path}


def _task(cfg: DictConfig) -> None:
    export(cfg)


def main() -> None:
    """``tconvseg-export`` / ``python scripts/export.py ckpt_path=... format=onnx|torchscript output=...``."""
    run_hydra(_task, "export")
