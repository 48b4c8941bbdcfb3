"""Segmentation scores from one confusion matrix over a whole split (not a mean over images):
global pixel accuracy, mean class accuracy, mean IoU and each class's IoU, ignored pixels left
out (SegNet's and FCN's definitions).

A class absent from both the truth and the predictions of the whole split has no IoU (0/0): it
is NaN and left out of the mean, as is the accuracy of a class absent from the truth. A class
that is predicted but never true has IoU 0 and counts.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor

from ..data.masks import IGNORE
from ..jsontext import float_or_nan


def confusion_matrix(predicted: Tensor, truth: Tensor, classes: int) -> Tensor:
    """(classes, classes) int64 counts, rows the true class, columns the predicted one, of the
    pixels whose truth is a class (``IGNORE`` and other values left out)."""
    truth, predicted = truth.reshape(-1).long(), predicted.reshape(-1).long()
    keep = (truth >= 0) & (truth < classes) & (truth != IGNORE)
    index = truth[keep] * classes + predicted[keep]
    return torch.bincount(index, minlength=classes * classes).reshape(classes, classes)


@dataclass
class SegmentationScores:
    """Percentages; ``iou`` and ``class_accuracy`` per class, NaN where undefined."""

    pixel_accuracy: float
    mean_class_accuracy: float
    mean_iou: float
    iou: list[float]
    class_accuracy: list[float]

    @classmethod
    def from_confusion(cls, confusion: Tensor) -> SegmentationScores:
        counts = confusion.double()
        hits = counts.diagonal()
        true, predicted = counts.sum(1), counts.sum(0)
        union = true + predicted - hits
        nan = torch.tensor(float("nan"), dtype=torch.float64)
        iou = torch.where(union > 0, hits / union.clamp(min=1), nan)
        accuracy = torch.where(true > 0, hits / true.clamp(min=1), nan)
        total = counts.sum()
        return cls(
            pixel_accuracy=100 * float(hits.sum() / total) if total else float("nan"),
            mean_class_accuracy=100 * float(accuracy.nanmean()),
            mean_iou=100 * float(iou.nanmean()),
            iou=[100 * float(v) for v in iou],
            class_accuracy=[100 * float(v) for v in accuracy],
        )

    @classmethod
    def from_dict(cls, data: dict) -> SegmentationScores:
        """Scores as a JSON file holds them (``dataclasses.asdict``, written by ``json_text``):
        an undefined score is null there and NaN again here."""
        return cls(
            pixel_accuracy=float_or_nan(data["pixel_accuracy"]),
            mean_class_accuracy=float_or_nan(data["mean_class_accuracy"]),
            mean_iou=float_or_nan(data["mean_iou"]),
            iou=[float_or_nan(v) for v in data["iou"]],
            class_accuracy=[float_or_nan(v) for v in data["class_accuracy"]],
        )

    def summary(self) -> dict[str, float]:
        return {
            "mIoU": self.mean_iou,
            "pixel acc": self.pixel_accuracy,
            "class acc": self.mean_class_accuracy,
        }
