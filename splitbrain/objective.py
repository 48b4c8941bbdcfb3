"""The training objective of any variant: targets at the prediction grid, then the losses.

Targets are formed at the output grid's resolution: the target channels are averaged over
each grid cell (area interpolation, over valid pixels only when a validity mask is given),
then encoded: 1-hot nearest bin (the split-brain paper) or, optionally, the ECCV16 soft
encoding. A grid cell is valid when at least half its pixels are.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch
import torch.nn.functional as F
from torch import Tensor

from .losses import bin_histogram, classification_loss, pixel_accuracy, regression_loss
from .models import CrossChannelEncoder, SplitBrain
from .splits import Target


def downsample(
    channels: Tensor, size: int, valid: Tensor | None = None
) -> tuple[Tensor, Tensor | None]:
    """(N,C,H,W) -> (N,C,size,size) cell means, and the (N,size,size) valid-cell mask."""
    if valid is None:
        return F.adaptive_avg_pool2d(channels, size), None
    weight = valid.unsqueeze(1).to(channels.dtype)
    fraction = F.adaptive_avg_pool2d(weight, size)
    sums = F.adaptive_avg_pool2d(channels * weight, size)
    return sums / fraction.clamp(min=1e-6), fraction.squeeze(1) >= 0.5


@torch.no_grad()
def target_histograms(
    model: SplitBrain, raw: Tensor, valid: Tensor | None = None
) -> dict[str, Tensor]:
    """Counts of the hard-encoded bins of every classification target on a raw batch, formed
    at the prediction grid exactly as the objective forms them: summed over batches, the
    empirical prior that ``losses.rebalancing_weights`` turns into ECCV16 class weights."""
    channels = model.channels(raw)
    grid, mask = downsample(channels, model.output_size(raw.shape[-1]), valid)
    counts: dict[str, Tensor] = {}
    for encoder in model.encoders:
        for target in encoder.spec.half.targets:
            if target.loss == "cl" and target.name not in counts:
                quantizer = model.quantizer(target.quantizer)
                bins = quantizer.encode_hard(grid[:, list(target.channels)])
                counts[target.name] = bin_histogram(bins, quantizer.num_bins, mask)
    return counts


@dataclass
class Objective:
    """How targets are encoded and weighted. The defaults are the split-brain paper's:
    hard 1-hot targets, no rebalancing. ``rebalance`` maps a classification target's name to
    (Q,) class weights (``losses.rebalancing_weights``): each position's loss is multiplied by
    the weight of its target's bin."""

    soft: bool = False
    soft_k: int = 5
    soft_sigma: float = 5.0
    rebalance: dict[str, Tensor] = field(default_factory=dict)  # target name -> (Q,) weights

    def _target_loss(
        self,
        model: SplitBrain,
        target: Target,
        prediction: Tensor,
        grid: Tensor,
        mask: Tensor | None,
        logs: dict[str, Tensor],
        prefix: str,
    ) -> Tensor:
        values = grid[:, list(target.channels)]
        if target.loss == "reg":
            normalised = model.split.space.normalise(grid, target.channels)
            return regression_loss(prediction, normalised, mask)
        quantizer = model.quantizer(target.quantizer)
        hard = quantizer.encode_hard(values)
        encoded = quantizer.encode_soft(values, self.soft_k, self.soft_sigma) if self.soft else hard
        weights = self.rebalance.get(target.name)
        weights = None if weights is None else weights.to(prediction.device)
        logs[f"{prefix}/accuracy"] = pixel_accuracy(prediction.detach(), hard, mask)
        return classification_loss(prediction, encoded, weights, mask)

    def encoder_loss(
        self,
        model: SplitBrain,
        encoder: CrossChannelEncoder,
        channels: Tensor,
        valid: Tensor | None,
        grid: Tensor,
        mask: Tensor | None,
        logs: dict[str, Tensor],
    ) -> Tensor:
        spec = encoder.spec
        inputs = model.encoder_input(encoder, channels, valid)
        if spec.input_dropout and encoder.training:
            inputs = F.dropout(inputs, spec.input_dropout)
        targets = {t.name: t for t in spec.half.targets}
        total = inputs.new_zeros(())
        for task in spec.all_tasks:
            keep = torch.tensor([c in task.visible for c in spec.half.inputs], device=inputs.device)
            task_input = inputs * keep.view(1, -1, 1, 1).to(inputs.dtype)
            predictions = encoder(task_input, task.targets)
            for name, prediction in predictions.items():
                target = targets[name]
                prefix = f"{spec.half.name}/{name}"
                loss = self._target_loss(model, target, prediction, grid, mask, logs, prefix)
                logs[f"{prefix}/loss"] = loss.detach()
                total = total + task.weight * target.weight * loss
        return total

    def __call__(
        self, model: SplitBrain, raw: Tensor, valid: Tensor | None = None
    ) -> tuple[Tensor, dict[str, Tensor]]:
        """Raw batch (N,C,H,W) float -> (total loss, detached per-head logs)."""
        channels = model.channels(raw)
        grid_size = model.output_size(raw.shape[-1])
        grid, mask = downsample(channels, grid_size, valid)
        logs: dict[str, Tensor] = {}
        total = sum(
            self.encoder_loss(model, e, channels, valid, grid, mask, logs) for e in model.encoders
        )
        logs["loss"] = total.detach()
        return total, logs
