"""int8 for CPUs: ONNX Runtime's static quantisation of an exported model, and the mIoU of an ONNX model on a split.

Static quantisation stores int8 weights (per output channel) and int8 activations whose ranges were
measured on calibration images (QDQ format: ``QuantizeLinear`` / ``DequantizeLinear`` pairs around each
convolution, matched transposed ones included, fused by ONNX Runtime into int8 kernels). The file keeps the
fp32 model's dynamic batch, height and width. Whether the ranges fit unseen images is an empirical question:
`score_onnx` measures the fp32 and int8 files' mIoU on the same items so the cost is known, not assumed.

Needs ``onnxruntime`` (the export extra), imported when used.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from tconvseg.data import SegmentationDataset
from tconvseg.data.datasets.info import DatasetInfo
from tconvseg.training.metrics import SegmentationMetrics

#: ``calibration_method`` values and their ONNX Runtime names.
CALIBRATION_METHODS = {"minmax": "MinMax", "percentile": "Percentile", "entropy": "Entropy"}
#: ``int8_format`` values and their ONNX Runtime names: ``qdq`` keeps the float graph with QuantizeLinear /
#: DequantizeLinear pairs (fused at load time), ``qoperator`` writes the int8 operators themselves (QLinearConv, ...).
QUANT_FORMATS = {"qdq": "QDQ", "qoperator": "QOperator"}
#: QOperator by default: on the CPU it ran the recipe's network faster than QDQ at equal accuracy (docs/deploy.md).
DEFAULT_QUANT_FORMAT = "qoperator"
_EXTRA_HINT = "install the export extra: pip install 'tconvseg[export]' (onnx, onnxscript, onnxruntime)"


def _onnxruntime() -> Any:
    try:
        import onnxruntime
    except ImportError as err:
        raise ImportError(f"quantize=int8 needs onnxruntime: {_EXTRA_HINT}") from err
    return onnxruntime


def onnx_session(path: str | Path, threads: int | None = None) -> Any:
    """An ONNX Runtime CPU session of ``path`` using ``threads`` intra-op threads (default: torch's thread count)."""
    ort = _onnxruntime()
    options = ort.SessionOptions()
    options.intra_op_num_threads = threads or torch.get_num_threads()
    return ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])


def spread_indices(length: int, count: int) -> list[int]:
    """``count`` indices spread evenly over ``0..length-1`` (all of them when ``count >= length``): calibration
    images from every part of a split (every drive of CamVid's, which are stored one after the other)."""
    if count >= length:
        return list(range(length))
    return sorted({int(i) for i in np.linspace(0, length - 1, count).round()})


def calibration_images(dataset: SegmentationDataset, count: int) -> list[np.ndarray]:
    """The network inputs ``(1, 3, H, W)`` float32 of ``count`` items spread over ``dataset`` (its eval transforms applied)."""
    if count < 1:
        raise ValueError(f"calibration_images={count} is invalid; expected a positive number of images (e.g. 64)")
    if len(dataset) == 0:
        raise ValueError("the calibration split holds no items; expected a split the model trained on (calibration_split=train)")
    return [dataset[i][0].unsqueeze(0).numpy().astype(np.float32) for i in spread_indices(len(dataset), count)]


def quantize_int8(
    fp32_path: str | Path, int8_path: str | Path, images: Sequence[np.ndarray], method: str = "minmax",
    quant_format: str = DEFAULT_QUANT_FORMAT,
) -> None:
    """Write ``int8_path``: ``fp32_path`` statically quantised (int8 weights per channel, uint8 activations, in
    ``quant_format``: one of `QUANT_FORMATS`) with activation ranges calibrated on ``images`` (each ``(1, 3, H, W)``
    float32, normalised as in training).

    Raises:
        ValueError: an unknown ``method`` or ``quant_format`` (expected one of `CALIBRATION_METHODS` /
            `QUANT_FORMATS`). ImportError: no onnxruntime.
    """
    if method not in CALIBRATION_METHODS:
        raise ValueError(f"calibration_method={method!r} is invalid; expected one of {', '.join(CALIBRATION_METHODS)}")
    if quant_format not in QUANT_FORMATS:
        raise ValueError(f"int8_format={quant_format!r} is invalid; expected one of {', '.join(QUANT_FORMATS)}")
    _onnxruntime()
    from onnxruntime.quantization import CalibrationDataReader, CalibrationMethod, QuantFormat, QuantType, quantize_static
    from onnxruntime.quantization.shape_inference import quant_pre_process

    class Reader(CalibrationDataReader):
        def __init__(self) -> None:
            self._items: Iterator[np.ndarray] = iter(images)

        def get_next(self) -> dict[str, np.ndarray] | None:
            image = next(self._items, None)
            return None if image is None else {"image": image}

    int8_path = Path(int8_path)
    prepared = int8_path.with_name(f".{int8_path.name}.prepared.onnx")
    try:
        # constant folding and graph clean-up first, as ONNX Runtime advises; the symbolic shape pass cannot follow
        # the runtime sizes of the matched decoder's crops (they are data, not constants) and is skipped
        quant_pre_process(str(fp32_path), str(prepared), skip_symbolic_shape=True)
        root = logging.getLogger()
        level = root.level
        root.setLevel(max(level, logging.ERROR))  # the quantiser logs a line per rescaled bias and per integer tensor on the root logger
        try:
            quantize_static(
                str(prepared), str(int8_path), Reader(), quant_format=getattr(QuantFormat, QUANT_FORMATS[quant_format]), per_channel=True,
                activation_type=QuantType.QUInt8, weight_type=QuantType.QInt8,
                calibrate_method=getattr(CalibrationMethod, CALIBRATION_METHODS[method]),
            )
        finally:
            root.setLevel(level)
    finally:
        prepared.unlink(missing_ok=True)


def score_onnx(path: str | Path, dataset: SegmentationDataset, info: DatasetInfo, limit: int | None = None) -> dict[str, float]:
    """mIoU, pixel and mean class accuracy, per-class IoU of the ONNX model ``path`` on ``dataset``'s items
    (the first ``limit``; all when ``None``), as `tconvseg.training.metrics.SegmentationMetrics.summary`.

    Each item runs alone (batch 1, its own size); logits are resized bilinearly to the mask's size before the
    argmax when the data config scores at label resolution, as evaluation does.
    """
    session = onnx_session(path)
    metrics = SegmentationMetrics(info.num_classes, info.ignore_index, info.class_names)
    count = len(dataset) if limit is None else min(limit, len(dataset))
    for i in range(count):
        image, mask = dataset[i][:2]
        logits = torch.from_numpy(session.run(None, {"image": image.unsqueeze(0).numpy()})[0])
        if logits.shape[-2:] != mask.shape[-2:]:
            logits = F.interpolate(logits, size=mask.shape[-2:], mode="bilinear", align_corners=False)
        metrics.update(logits.argmax(1), mask.unsqueeze(0).long())
    return metrics.summary()


def file_size_mb(path: str | Path) -> float:
    """The file's size in MB (10^6 bytes)."""
    return os.path.getsize(path) / 1e6
