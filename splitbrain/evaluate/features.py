"""Features of a frozen trunk: the linear probe's ~9,000-dimension resize, and pooled vectors.

The paper probes every layer at about 9,000 dimensions, so that layers are compared at equal
classifier capacity: each activation is resized bilinearly (not average-pooled) to a square
grid. For the ``paper`` and ``transfer`` presets the grid sides are the paper's table; for
other presets (``small``), or layers the table lacks (fc6, fc7), the side is the one whose
dimension count comes closest to 9,000, never larger than the activation itself.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ..models import SplitBrain

#: The paper's grid sides (SPEC section 5): 9,600 / 9,216 / 9,600 / 9,600 / 9,216 dimensions.
PAPER_GRID = {
    "conv1": 10,
    "pool1": 10,
    "conv2": 6,
    "pool2": 6,
    "conv3": 5,
    "conv4": 5,
    "conv5": 6,
    "pool5": 6,
}
PAPER_PRESETS = ("paper", "transfer")
TARGET_DIMS = 9000
DEFAULT_LAYERS = ("conv1", "conv2", "conv3", "conv4", "conv5")


def _out_side(side: int, kernel: int, stride: int, padding: int, dilation: int) -> int:
    return (side + 2 * padding - dilation * (kernel - 1) - 1) // stride + 1


def activation_shapes(model: SplitBrain, side: int) -> dict[str, tuple[int, int]]:
    """(channels, spatial side) of every layer's concatenated activation for a square input
    of ``side`` pixels, computed from the modules without running them."""
    shapes: dict[str, tuple[int, int]] = {}
    for encoder in model.encoders:
        s, channels = side, 0
        for name, layer in encoder.tower.layers.items():
            op = layer if isinstance(layer, nn.MaxPool2d) else layer[0]
            geometry = [op.kernel_size, op.stride, op.padding, op.dilation]
            s = _out_side(s, *(g if isinstance(g, int) else g[0] for g in geometry))
            channels = channels if isinstance(layer, nn.MaxPool2d) else op.out_channels
            if name in model.layer_names:
                shapes[name] = (shapes.get(name, (0, 0))[0] + channels, s)
    return shapes


def probe_grid(preset: str, layer: str, channels: int, side: int, target: int = TARGET_DIMS) -> int:
    """Side of the square grid a layer's activation is resized to for the linear probe."""
    if preset in PAPER_PRESETS and layer in PAPER_GRID:
        return min(PAPER_GRID[layer], side)
    return min(range(1, side + 1), key=lambda g: (abs(channels * g * g - target), g))


def probe_grids(
    model: SplitBrain, side: int, layers: list[str], target: int = TARGET_DIMS
) -> dict[str, tuple[int, int]]:
    """(grid side, channels) per layer for input images of ``side`` pixels."""
    shapes = activation_shapes(model, side)
    preset = model.config.preset
    return {
        name: (probe_grid(preset, name, shapes[name][0], shapes[name][1], target), shapes[name][0])
        for name in layers
    }


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


def to_raw(images: Tensor) -> Tensor:
    """uint8 (N,3,H,W) batches -> float RGB in [0,1], NHWC in memory (1.5x faster on CPU)."""
    return images.float().div_(255.0).contiguous(memory_format=torch.channels_last)


def resize_activation(x: Tensor, grid: int) -> Tensor:
    """(N,C,h,w) -> (N, C*grid*grid), bilinear as the paper (identity at the same size)."""
    if x.shape[-2:] != (grid, grid):
        x = F.interpolate(x, size=(grid, grid), mode="bilinear", align_corners=False)
    return x.flatten(1)


def pool_activation(x: Tensor) -> Tensor:
    """(N,C,h,w) -> unit-length (N,C): the global average, for cosine kNN and fine-tuning."""
    return F.normalize(x.mean((2, 3)), dim=1)


class FrozenTrunk(nn.Module):
    """A model that evaluation cannot change: always in eval mode (BatchNorm statistics
    frozen), no gradients, and ``train()`` (which Lightning calls) has no effect on it.

    Forward takes uint8 image batches and gives each layer's probe features (N, dims).
    """

    def __init__(self, model: SplitBrain, grids: dict[str, tuple[int, int]]) -> None:
        super().__init__()
        self.model = model.eval().to(memory_format=torch.channels_last)
        self.grids = grids

    def train(self, mode: bool = True) -> FrozenTrunk:
        return super().train(False)

    @torch.no_grad()
    def forward(self, images: Tensor) -> dict[str, Tensor]:
        activations = self.model.features(to_raw(images), list(self.grids))
        return {n: resize_activation(activations[n], g) for n, (g, _) in self.grids.items()}
