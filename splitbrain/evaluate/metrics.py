"""Scores of classifiers: top-k accuracy for single-label data, mean average precision for
multi-label data (the PASCAL VOC classification protocol), both as the area under the
precision-recall curve and as VOC 2007's 11-point interpolation."""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import Tensor


def topk_correct(scores: Tensor, labels: Tensor, ks: tuple[int, ...] = (1, 5)) -> dict[int, int]:
    """How many rows of ``scores`` (N, C) have their label among the k highest, for each k."""
    top = scores.topk(min(max(ks), scores.shape[1]), dim=1).indices
    hits = top == labels[:, None]
    return {k: int(hits[:, :k].any(1).sum()) for k in ks}


def _ranking(scores: Tensor, positives: Tensor) -> tuple[Tensor, Tensor] | None:
    """(true positives, items retrieved) at every distinct score threshold, highest first, as
    float64; items with equal scores enter together. None when there is no positive item."""
    order = torch.argsort(scores.double(), descending=True, stable=True)
    ranked, hits = scores.double()[order], positives[order].double()
    true_positives = hits.cumsum(0)
    if len(hits) == 0 or true_positives[-1] == 0:
        return None
    # the last item of every run of equal scores is where a threshold cuts the ranking
    cut = torch.ones(len(ranked), dtype=torch.bool)
    cut[:-1] = ranked[1:] != ranked[:-1]
    retrieved = torch.arange(1, len(ranked) + 1, dtype=torch.float64)[cut]
    return true_positives[cut], retrieved


def average_precision(scores: Tensor, positives: Tensor) -> float:
    """Area under the precision-recall curve of one class, without interpolation.

    The same number as scikit-learn's ``average_precision_score``: the sum over distinct score
    thresholds, highest first, of (recall gained) x (precision there); items with equal scores
    enter together. NaN when there is no positive item.
    """
    ranking = _ranking(scores, positives)
    if ranking is None:
        return float("nan")
    true_positives, retrieved = ranking
    recall = true_positives / true_positives[-1]
    gained = torch.diff(recall, prepend=recall.new_zeros(1))
    return float((gained * true_positives / retrieved).sum())


def average_precision_11point(scores: Tensor, positives: Tensor) -> float:
    """VOC 2007's interpolated average precision of one class: the mean, over the recall
    thresholds 0, 0.1, ..., 1, of the highest precision at a recall of at least the threshold.

    As VOC 2007's devkit computes it; usually a little higher than the area. Thresholds are
    compared exactly (recall 3/10 reaches 0.3), and items with equal scores enter together
    (the devkit ranked them in file order). NaN when there is no positive item.
    """
    ranking = _ranking(scores, positives)
    if ranking is None:
        return float("nan")
    true_positives, retrieved = ranking
    tenths = torch.arange(11, dtype=torch.float64)[:, None]
    reached = 10 * true_positives >= tenths * true_positives[-1]  # integer counts: exact
    precision = torch.where(reached, true_positives / retrieved, 0.0)
    return float(precision.amax(1).mean())


def mean_average_precision(
    scores: Tensor,
    targets: Tensor,
    ap: Callable[[Tensor, Tensor], float] = average_precision,
) -> tuple[float, list[float]]:
    """(mAP over the classes that have positives, per-class AP) for (N, C) scores and targets,
    by ``ap`` (``average_precision``, the area, or ``average_precision_11point``).

    ``targets`` holds 1 (positive), 0 (negative) or -1 (ignored, as VOC's "difficult" items:
    left out of that class's ranking). A class without positives has a NaN AP.
    """
    per_class = []
    for c in range(targets.shape[1]):
        keep = targets[:, c] >= 0
        per_class.append(ap(scores[keep, c], targets[keep, c] > 0))
    valid = [value for value in per_class if value == value]
    return (sum(valid) / len(valid) if valid else float("nan")), per_class
