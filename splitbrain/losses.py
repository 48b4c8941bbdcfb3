"""Per-position losses on the prediction grid, with masks for invalid positions.

Both losses average over valid positions (the paper sums; the mean keeps learning rates
independent of batch and grid size).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

from .quantize import SoftTargets


def _masked_mean(per_position: Tensor, mask: Tensor | None) -> Tensor:
    if mask is None:
        return per_position.mean()
    mask = mask.to(per_position.dtype)
    return (per_position * mask).sum() / mask.sum().clamp(min=1.0)


def _hard(target: Tensor | SoftTargets) -> Tensor:
    """The most likely bin of a target: hard indices, soft (sparse or dense) distributions."""
    if isinstance(target, SoftTargets):
        return target.index[:, 0]
    return target if target.dtype == torch.long else target.argmax(1)


def classification_loss(
    logits: Tensor,
    target: Tensor | SoftTargets,
    weights: Tensor | None = None,
    mask: Tensor | None = None,
) -> Tensor:
    """Cross-entropy of (N,Q,H,W) logits against hard (N,H,W) bin indices, sparse
    ``SoftTargets`` or dense (N,Q,H,W) distributions; ``weights`` (Q,) rebalances by the
    target's most likely bin."""
    if isinstance(target, SoftTargets):
        log_probs = F.log_softmax(logits.float(), dim=1).gather(1, target.index)
        per_position = -(target.weight * log_probs).sum(1)
    elif target.dtype == torch.long:
        per_position = F.cross_entropy(logits.float(), target, reduction="none")
    else:
        per_position = -(target * F.log_softmax(logits.float(), dim=1)).sum(1)
    hard = _hard(target)
    if weights is not None:
        per_position = per_position * weights[hard]
    return _masked_mean(per_position, mask)


def regression_loss(prediction: Tensor, target: Tensor, mask: Tensor | None = None) -> Tensor:
    """1/2 squared l2 distance over channels, averaged over valid positions."""
    per_position = 0.5 * (prediction.float() - target).square().sum(1)
    return _masked_mean(per_position, mask)


def pixel_accuracy(
    logits: Tensor, target: Tensor | SoftTargets, mask: Tensor | None = None
) -> Tensor:
    """Fraction of valid positions whose most likely bin is the target's."""
    return _masked_mean((logits.argmax(1) == _hard(target)).float(), mask)


def bin_histogram(index: Tensor, num_bins: int, mask: Tensor | None = None) -> Tensor:
    """Counts of each bin among (valid) hard-encoded positions: accumulate for the prior."""
    index = index.flatten() if mask is None else index[mask.bool()]
    return torch.bincount(index, minlength=num_bins).double()


def rebalancing_weights(prior: Tensor, mix: float = 0.5) -> Tensor:
    """ECCV16 class rebalancing: w ∝ ((1 - mix) p + mix / Q)^-1 with sum_q p_q w_q = 1."""
    p = prior.double() / prior.sum()
    w = 1.0 / ((1 - mix) * p + mix / p.numel())
    return (w / (p * w).sum()).float()
