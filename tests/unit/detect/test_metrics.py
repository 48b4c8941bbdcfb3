"""Detection scores against a case computed by hand (below), crowd and difficult regions
ignored, and the VOC 2007 11-point rule."""

import math

import numpy as np
import pytest

from splitbrain.data.objects import Objects
from splitbrain.detect import Detections, DetectionScores, detection_scores

pytest.importorskip("pycocotools", reason="detection metrics need pycocotools (.[detect])")


def _truths() -> list[Objects]:
    """Two images of cars: A, B in the first; C and a crowd (or difficult) region in the
    second. No person anywhere."""
    return [
        Objects.of([((0, 0, 10, 10), 1, False), ((20, 20, 30, 30), 1, False)]),
        Objects.of([((0, 0, 10, 10), 1, False), ((40, 40, 60, 60), 1, True)]),
    ]


def _found(rows: list[tuple[tuple, float]]) -> Detections:
    boxes = np.array([box for box, _ in rows], np.float32).reshape(-1, 4)
    scores = np.array([score for _, score in rows], np.float32)
    return Detections(boxes, scores, np.ones(len(rows), np.int64))


def test_scores_match_the_case_computed_by_hand():
    """Detections by score: d1 0.9 on A (hit), d2 0.8 on A again (a duplicate: false alarm),
    d3 0.7 on the crowd region (ignored), d4 0.6 on nothing (false alarm), d5 0.5 on B with IoU
    100/120 = 0.83 (a hit up to IoU 0.8, a false alarm above). C is never found: 3 objects.

    At IoU <= 0.8 the hits and false alarms in score order are TP FP FP TP: recall 1/3, 1/3,
    1/3, 2/3, precision 1, 1/2, 1/3, 1/2, whose envelope is 1, 1/2, 1/2, 1/2.
    - VOC 2007, 11 points: precision 1 at recall 0, 0.1, 0.2, 0.3; 1/2 at 0.4, 0.5, 0.6; 0 at
      0.7-1.0: (4 + 1.5) / 11 = 50%.
    - COCO, 101 points: 1 at recall 0.00-0.33 (34 points), 1/2 at 0.34-0.66 (33), 0 above:
      (34 + 16.5) / 101 = 50%. At IoU 0.85, 0.9, 0.95 d5 misses: 34 / 101 = 33.66%.
    - AP over the 10 IoU thresholds: (7 x 50 + 3 x 33.66) / 10 = 45.10%; AP75 = 50%.
    """
    found = [
        _found([((0, 0, 10, 10), 0.9), ((0, 0, 10, 10), 0.8), ((20, 20, 30, 32), 0.5)]),
        _found([((40, 40, 60, 60), 0.7), ((100, 100, 110, 110), 0.6)]),
    ]
    scores = detection_scores(_truths(), found, ["car", "person"])
    assert scores.voc07_ap50 == pytest.approx(100 * 5.5 / 11)
    assert scores.ap50 == pytest.approx(100 * 50.5 / 101)
    assert scores.ap75 == pytest.approx(100 * 50.5 / 101)
    assert scores.ap == pytest.approx((7 * 100 * 50.5 / 101 + 3 * 100 * 34 / 101) / 10)
    assert scores.category_ap50[0] == pytest.approx(scores.ap50)
    assert math.isnan(scores.category_ap[1])  # no person to find: no AP, out of the means
    # without the crowd region d3 is a false alarm: TP FP FP FP TP, precision envelope 1, 1/2,
    # 2/5, 2/5, 2/5: (4 + 3 x 0.4) / 11 = 47.27%
    kept = [Objects(t.boxes[~t.ignored], t.labels[~t.ignored], t.ignored[~t.ignored])
            for t in _truths()]  # fmt: skip
    worse = detection_scores(kept, found, ["car", "person"])
    assert worse.voc07_ap50 == pytest.approx(100 * 5.2 / 11)
    back = DetectionScores.from_dict(scores.to_dict())
    assert back.ap == scores.ap and math.isnan(back.category_ap50[1])


def test_nothing_found_scores_zero_and_no_object_no_score():
    empty = [_found([]), _found([])]
    scores = detection_scores(_truths(), empty, ["car", "person"])
    assert scores.ap50 == 0 and scores.voc07_ap50 == 0 and math.isnan(scores.category_ap50[1])
