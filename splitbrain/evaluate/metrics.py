"""Scores of classifiers: top-k accuracy for single-label data, mean average precision for
multi-label data (the PASCAL VOC classification protocol)."""

from __future__ import annotations

import torch
from torch import Tensor


def topk_correct(scores: Tensor, labels: Tensor, ks: tuple[int, ...] = (1, 5)) -> dict[int, int]:
    """How many rows of ``scores`` (N, C) have their label among the k highest, for each k."""
    top = scores.topk(min(max(ks), scores.shape[1]), dim=1).indices
    hits = top == labels[:, None]
    return {k: int(hits[:, :k].any(1).sum()) for k in ks}


def average_precision(scores: Tensor, positives: Tensor) -> float:
    """Area under the precision-recall curve of one class, without interpolation.

    The same number as scikit-learn's ``average_precision_score``: the sum over distinct score
    thresholds, highest first, of (recall gained) x (precision there); items with equal scores
    enter together. NaN when there is no positive item.
    """
    order = torch.argsort(scores.double(), descending=True, stable=True)
    ranked, hits = scores.double()[order], positives[order].double()
    true_positives = hits.cumsum(0)
    if len(hits) == 0 or true_positives[-1] == 0:
        return float("nan")
    # the last item of every run of equal scores is where a threshold cuts the ranking
    cut = torch.ones(len(ranked), dtype=torch.bool)
    cut[:-1] = ranked[1:] != ranked[:-1]
    retrieved = torch.arange(1, len(ranked) + 1, dtype=torch.float64)[cut]
    precision = true_positives[cut] / retrieved
    recall = true_positives[cut] / true_positives[-1]
    gained = torch.diff(recall, prepend=recall.new_zeros(1))
    return float((gained * precision).sum())


def mean_average_precision(scores: Tensor, targets: Tensor) -> tuple[float, list[float]]:
    """(mAP over the classes that have positives, per-class AP) for (N, C) scores and targets.

    ``targets`` holds 1 (positive), 0 (negative) or -1 (ignored, as VOC's "difficult" items:
    left out of that class's ranking).
    """
    per_class = []
    for c in range(targets.shape[1]):
        keep = targets[:, c] >= 0
        per_class.append(average_precision(scores[keep, c], targets[keep, c] > 0))
    valid = [ap for ap in per_class if ap == ap]
    return (sum(valid) / len(valid) if valid else float("nan")), per_class
