"""Features of every image for the user's own use, pooled as asked: ``sb.extract``.

    feats = sb.extract(model, images, ["conv5", "fc7"], pool="avg")   # {layer: (N, D)}

Pools: ``avg``, the spatial mean of each channel (N, C); ``paper``, the linear probe's
bilinear resize to about 9,000 dimensions (N, C x g x g); ``none``, the activation as it is
(N, C, h, w). The paper probes every layer at about 9,000 dimensions, so that layers are
compared at equal classifier capacity: each activation is resized bilinearly (not
average-pooled) to a square grid. For the ``paper`` and ``transfer`` presets the grid sides
are the paper's table (SPEC section 5); for other presets (``small``), or layers the table
lacks (fc6, fc7), the side is the one whose dimension count comes closest to 9,000, never
larger than the activation itself.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from .device import autocast
from .models import SplitBrain

POOLS = ("avg", "paper", "none")
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
PAPER_PRESETS = ("paper", "transfer", "caffe")
TARGET_DIMS = 9000


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


def model_input(model: SplitBrain, images: Tensor) -> tuple[Tensor, Tensor | None]:
    """uint8 loader batches -> (the model's raw input, validity mask or None), as its channel
    space decodes them (RGB in [0,1]; RGB + HHA + mask; any channels / 255), NHWC in memory
    (1.5x faster on CPU)."""
    raw, valid = model.split.space.decode_batch(images)
    return raw.contiguous(memory_format=torch.channels_last), valid


def resize_activation(x: Tensor, grid: int) -> Tensor:
    """(N,C,h,w) -> (N, C*grid*grid), bilinear as the paper (identity at the same size)."""
    if x.shape[-2:] != (grid, grid):
        x = F.interpolate(x, size=(grid, grid), mode="bilinear", align_corners=False)
    return x.flatten(1)


def pool_features(x: Tensor, pool: str, preset: str, layer: str) -> Tensor:
    """One layer's activation (N,C,h,w) pooled by ``pool`` (see the module's docstring)."""
    if pool == "avg":
        return x.mean((2, 3))
    if pool == "paper":
        return resize_activation(x, probe_grid(preset, layer, x.shape[1], min(x.shape[-2:])))
    _check_pool(pool)
    return x


def _check_pool(pool: str) -> None:
    if pool not in POOLS:
        raise ValueError(f"unknown pooling {pool!r}; choose from {', '.join(POOLS)}")


def _pooled(
    model: SplitBrain,
    raw: Tensor,
    valid: Tensor | None,
    layers: list[str],
    pool: str,
    precision: str = "32-true",
) -> dict[str, Tensor]:
    with autocast(raw.device, precision):
        raw = raw.contiguous(memory_format=torch.channels_last)
        activations = model.features(raw, layers, valid)
    preset = model.config.preset
    return {n: pool_features(activations[n], pool, preset, n).float().cpu() for n in layers}


@torch.no_grad()
def extract_batches(
    model: SplitBrain,
    batches: Iterable,
    layers: list[str],
    pool: str = "avg",
    precision: str = "32-true",
) -> Iterator[tuple[dict[str, Tensor], Tensor]]:
    """Per loader batch (uint8 images, labels): each layer's pooled features (float32, on the
    CPU) and the labels. Batches are decoded by the model's channel space, on the model's
    device, and run at ``precision`` (``bf16-mixed``: bf16 autocast); empty batches (every
    item unreadable) are passed over."""
    _check_pool(pool)
    device = next(model.parameters()).device
    for images, labels in batches:
        if len(images) == 0:
            continue
        raw, valid = model.split.space.decode_batch(images.to(device))
        yield _pooled(model, raw, valid, layers, pool, precision), labels


@torch.no_grad()
def extract(
    model: SplitBrain,
    images: Tensor | Iterable,
    layers: list[str] | str,
    pool: str = "avg",
    batch_size: int = 64,
    precision: str = "32-true",
) -> dict[str, Tensor]:
    """Pooled features of ``images`` at ``layers``, {layer: (N, ...)} float32 on the CPU.

    ``images``: a float tensor (N,C,H,W) of raw input (RGB in [0, 1] for Lab models), a uint8
    tensor as the loaders give, or an iterable of (uint8 images, labels) batches such as a
    DataLoader of this package's datasets. The model is used as it is (eval mode after
    ``sb.build`` and ``sb.load``); ``precision`` ``bf16-mixed`` runs it under bf16 autocast.
    """
    layers = [layers] if isinstance(layers, str) else list(layers)
    _check_pool(pool)
    if isinstance(images, Tensor) and images.is_floating_point():  # raw input: no decoding
        device = next(model.parameters()).device
        parts = [
            _pooled(model, chunk.to(device), None, layers, pool, precision)
            for chunk in images.split(batch_size)
        ]
    else:
        if isinstance(images, Tensor):
            images = [(chunk, None) for chunk in images.split(batch_size)]
        batches = extract_batches(model, images, layers, pool, precision)
        parts = [features for features, _ in batches]
    if not parts:
        raise ValueError("no readable images to extract features from")
    return {n: torch.cat([p[n] for p in parts]) for n in layers}
