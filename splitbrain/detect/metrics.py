"""Detection scores from pycocotools' COCO evaluation (the reference implementation), never
hand-written matching:

- COCO's AP averaged over IoU 0.50:0.05:0.95, AP50 and AP75, and each category's AP and AP50
  (101 recall points, up to 100 detections per image, crowd regions ignored: a detection on
  one is neither a hit nor a false alarm);
- PASCAL VOC 2007's 11-point AP50: the same evaluation at IoU 0.5 with the 11 recall points
  0, 0.1, ..., 1, difficult objects ignored as crowd regions. It differs from the VOC devkit in
  three ways, documented in docs/DETECTION.md: a detection is matched to the best *unmatched*
  object (the devkit takes the best overlap, and a duplicate of a found object is a false
  alarm), overlap with a difficult object is measured over the detection's own area, and IoU
  0.5 itself counts (the devkit's Python port asks for more than 0.5). Boxes are 0-based pixel
  edges, so VOC's 1-based inclusive corners keep the devkit's +1 widths.

Scores are percentages; a category with no object in the scored images has no AP (NaN) and is
left out of the means.

    scores = detection_scores(truths, detections, ["car", "person"])
    print(scores.summary())   # {"AP50": ..., "AP": ..., "AP75": ..., "VOC07 AP50": ...}
"""

from __future__ import annotations

import contextlib
import io
import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass

import numpy as np

from ..data.objects import Objects
from ..jsontext import float_or_nan

#: Detections per image that COCO's AP counts (its ``maxDets`` 100).
MAX_DETECTIONS = 100


@dataclass
class Detections:
    """One image's detections: ``boxes`` (N, 4) x1, y1, x2, y2 pixels, ``scores`` (N,),
    ``labels`` (N,) in 1..classes."""

    boxes: np.ndarray
    scores: np.ndarray
    labels: np.ndarray


@dataclass
class DetectionScores:
    """Percentages; per-category lists in the order of the classes, NaN where undefined."""

    ap: float
    ap50: float
    ap75: float
    voc07_ap50: float
    category_ap: list[float]
    category_ap50: list[float]

    def summary(self) -> dict[str, float]:
        return {"AP50": self.ap50, "AP": self.ap, "AP75": self.ap75, "VOC07 AP50": self.voc07_ap50}

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict) -> DetectionScores:
        """From ``to_dict``'s JSON, where NaN was written as null."""
        lists = ("category_ap", "category_ap50")
        return cls(
            **{k: float_or_nan(v) for k, v in data.items() if k not in lists},
            **{k: [float_or_nan(v) for v in data[k]] for k in lists},
        )


def _coco_boxes(boxes: np.ndarray) -> list[list[float]]:
    """x1, y1, x2, y2 -> COCO's x, y, width, height."""
    return [[float(x1), float(y1), float(x2 - x1), float(y2 - y1)] for x1, y1, x2, y2 in boxes]


def _datasets(
    truths: Sequence[Objects], detections: Sequence[Detections], classes: int
) -> tuple[dict, list[dict]]:
    images, annotations, results = [], [], []
    for image, (truth, found) in enumerate(zip(truths, detections, strict=True), start=1):
        images.append({"id": image})
        for box, label, ignored in zip(
            _coco_boxes(truth.boxes), truth.labels, truth.ignored, strict=True
        ):
            annotations.append({
                "id": len(annotations) + 1, "image_id": image, "category_id": int(label),
                "bbox": box, "area": box[2] * box[3], "iscrowd": int(ignored),
            })  # fmt: skip
        for box, score, label in zip(
            _coco_boxes(found.boxes), found.scores, found.labels, strict=True
        ):
            results.append({
                "image_id": image, "category_id": int(label), "bbox": box,
                "score": float(score),
            })  # fmt: skip
    categories = [{"id": k} for k in range(1, classes + 1)]
    return {"images": images, "annotations": annotations, "categories": categories}, results


def _evaluate(truth: dict, results: list[dict], voc07: bool) -> np.ndarray:
    """pycocotools' precision array (IoU thresholds, recall points, categories), area "all",
    at its largest detections-per-image; -1 where a category has no object."""
    from pycocotools.coco import COCO
    from pycocotools.cocoeval import COCOeval

    with contextlib.redirect_stdout(io.StringIO()):  # pycocotools reports progress by print
        ground = COCO()
        ground.dataset = truth
        ground.createIndex()
        found = ground.loadRes(results)
        evaluation = COCOeval(ground, found, "bbox")
        if voc07:
            evaluation.params.iouThrs = np.array([0.5])
            evaluation.params.recThrs = np.linspace(0, 1, 11)
            evaluation.params.maxDets = [10_000]
            evaluation.params.areaRng = [[0, 1e10]]
            evaluation.params.areaRngLbl = ["all"]
        else:
            evaluation.params.maxDets = [1, 10, MAX_DETECTIONS]
        evaluation.evaluate()
        evaluation.accumulate()
    return evaluation.eval["precision"][:, :, :, 0, -1]


def _mean(precision: np.ndarray) -> float:
    """100 x the mean of the defined precisions (NaN when none is)."""
    defined = precision[precision > -1]
    return 100 * float(defined.mean()) if defined.size else math.nan


def detection_scores(
    truths: Sequence[Objects], detections: Sequence[Detections], classes: Sequence[str]
) -> DetectionScores:
    """The scores of ``detections`` against ``truths``, image by image (see the module)."""
    count = len(classes)
    truth, results = _datasets(truths, detections, count)
    if not results:  # pycocotools cannot load an empty result list: nothing found, AP 0
        has = {a["category_id"] for a in truth["annotations"] if not a["iscrowd"]}
        per = [0.0 if k in has else math.nan for k in range(1, count + 1)]
        zero = 0.0 if has else math.nan
        return DetectionScores(zero, zero, zero, zero, per, list(per))
    coco = _evaluate(truth, results, voc07=False)  # (10 IoUs, 101 recalls, categories)
    voc = _evaluate(truth, results, voc07=True)  # (1, 11, categories)
    iou50, iou75 = 0, 5
    return DetectionScores(
        ap=_mean(coco),
        ap50=_mean(coco[iou50]),
        ap75=_mean(coco[iou75]),
        voc07_ap50=_mean(voc),
        category_ap=[_mean(coco[:, :, k]) for k in range(count)],
        category_ap50=[_mean(coco[iou50, :, k]) for k in range(count)],
    )
