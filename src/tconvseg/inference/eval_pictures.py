"""Evaluation pictures: the test split's confusion matrix as CSV / PNG and image | truth | prediction rows."""

from __future__ import annotations

from pathlib import Path

from tconvseg.callbacks.confusion import ConfusionMatrixRecorder
from tconvseg.callbacks.val_samples import model_samples
from tconvseg.data.datasets.base import SegmentationDataset
from tconvseg.data.datasets.info import DatasetInfo
from tconvseg.inference.visualize import grid, write_confusion_csv, write_confusion_png
from tconvseg.training.system import SegmentationSystem


def write_eval_pictures(
    recorder: ConfusionMatrixRecorder, system: SegmentationSystem, dataset: SegmentationDataset, info: DatasetInfo,
    folder: Path, tag: str, samples: int,
) -> list[Path]:
    """``confusion_matrix_<tag>.csv`` / ``.png`` and ``samples_<tag>.png`` (the first ``samples`` items) in ``folder``."""
    if recorder.matrix is None:
        raise RuntimeError("no confusion matrix was recorded: the test loop did not run to its end")
    names = list(info.class_names)
    written = [folder / f"confusion_matrix_{tag}.csv"]
    write_confusion_csv(recorder.matrix, names, written[0])
    if write_confusion_png(recorder.matrix, names, folder / f"confusion_matrix_{tag}.png"):
        written.append(folder / f"confusion_matrix_{tag}.png")
    if samples > 0:
        written.append(folder / f"samples_{tag}.png")
        grid(model_samples(system, dataset, samples)).save(written[-1])
    return written
