"""Features of a frozen trunk for the evaluations: the probe's trunk, kNN's pooled vectors.

The probe's ~9,000-dimension grids (SPEC section 5) are the method's, in ``splitbrain.extract``.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ..device import autocast
from ..extract import model_input, resize_activation
from ..models import SplitBrain

DEFAULT_LAYERS = ("conv1", "conv2", "conv3", "conv4", "conv5")


def describe_grids(grids: dict[str, tuple[int, int]]) -> str:
    """E.g. ``conv1 10x10x96 = 9,600``, one entry per layer."""
    return ", ".join(f"{n} {g}x{g}x{c} = {g * g * c:,}" for n, (g, c) in grids.items())


def check_layers(model: SplitBrain, layers: list[str] | None, name: str = "model") -> list[str]:
    """The layers to evaluate: ``None`` means all the model has (fc6/fc7 where they exist)."""
    if layers is None:
        return model.layer_names
    missing = [layer for layer in layers if layer not in model.layer_names]
    if missing:
        raise ValueError(
            f"{name} has no layer {', '.join(missing)} (it has {', '.join(model.layer_names)})"
        )
    return list(layers)


def pool_activation(x: Tensor) -> Tensor:
    """(N,C,h,w) -> unit-length (N,C): the global average, for cosine kNN and fine-tuning."""
    return F.normalize(x.mean((2, 3)), dim=1)


class FrozenTrunk(nn.Module):
    """A model that evaluation cannot change: always in eval mode (BatchNorm statistics
    frozen), no gradients, and ``train()`` (which Lightning calls) has no effect on it.

    Forward takes uint8 image batches and gives each layer's probe features (N, dims), the
    trunk run at ``precision`` (bf16 autocast or fp32).
    """

    def __init__(
        self, model: SplitBrain, grids: dict[str, tuple[int, int]], precision: str = "32-true"
    ) -> None:
        super().__init__()
        self.model = model.eval().to(memory_format=torch.channels_last)
        self.grids = grids
        self.precision = precision

    def train(self, mode: bool = True) -> FrozenTrunk:
        return super().train(False)

    @torch.no_grad()
    def forward(self, images: Tensor) -> dict[str, Tensor]:
        with autocast(images.device, self.precision):
            raw, valid = model_input(self.model, images)
            activations = self.model.features(raw, list(self.grids), valid)
        return {n: resize_activation(activations[n], g) for n, (g, _) in self.grids.items()}
