"""Segmentation metrics over a whole split, from torchmetrics (state is summed across DDP ranks)."""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torchmetrics import Metric, MetricCollection
from torchmetrics.classification import MulticlassAccuracy, MulticlassJaccardIndex


class SegmentationMetrics(MetricCollection):
    """Per-class IoU, mIoU, pixel accuracy and mean class accuracy.

    ``update(preds (N, H, W) int64, target (N, H, W) int64)``; pixels equal to ``ignore_index``
    are left out. `summary` turns ``compute()`` into a flat dict of floats:
    ``mIoU``, ``pixel_acc``, ``mean_class_acc`` and ``IoU/<class name>``. Classes that appear in
    neither predictions nor targets have IoU NaN and are left out of the mean.
    """

    def __init__(self, num_classes: int, ignore_index: int, class_names: Sequence[str] | None = None) -> None:
        metrics: dict[str, Metric] = {
            "iou": MulticlassJaccardIndex(num_classes, average="none", ignore_index=ignore_index, zero_division=float("nan")),
            "pixel_acc": MulticlassAccuracy(num_classes, average="micro", ignore_index=ignore_index),
            "mean_class_acc": MulticlassAccuracy(num_classes, average="macro", ignore_index=ignore_index),
        }
        super().__init__(metrics)
        self.class_names = list(class_names) if class_names is not None else [str(i) for i in range(num_classes)]
        if len(self.class_names) != num_classes:
            raise ValueError(f"got {len(self.class_names)} class names for {num_classes} classes")

    def summary(self) -> dict[str, float]:
        values = self.compute()
        iou = values["iou"]
        out = {
            "mIoU": float(torch.nanmean(iou)),
            "pixel_acc": float(values["pixel_acc"]),
            "mean_class_acc": float(values["mean_class_acc"]),
        }
        out.update({f"IoU/{name}": float(v) for name, v in zip(self.class_names, iou)})
        return out
