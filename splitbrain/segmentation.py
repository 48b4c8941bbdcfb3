"""Segmentation heads on a split-brain trunk: a class score for every pixel (SPEC section 5,
the paper's third test; Long, Shelhamer & Darrell, "Fully Convolutional Networks for Semantic
Segmentation", CVPR 2015).

* ``hypercolumn``: the dense analogue of the linear probe. Each chosen layer's activation is
  normalised (a BatchNorm without affine parameters) and mapped to class scores by a 1x1
  convolution; the score maps are upsampled bilinearly to the pixel grid and summed. Upsampling
  is linear, so this is exactly one linear classifier per pixel on the hypercolumn of those
  layers upsampled to the pixel grid (Hariharan et al., CVPR 2015), without ever holding the
  hypercolumn (conv1..conv5 of the paper network at 240x180: 1,088 channels x 43,200 pixels).
* ``fcn32s``: FCN-32s. fc6 and fc7 already are convolutions here (the paper trains fully
  convolutionally); a 1x1 score layer on fc7, initialised to zero as in FCN, and a learnt
  transposed convolution initialised to bilinear upsampling by the trunk's stride (16 for the
  paper preset, whose pool5 keeps the resolution of conv5; 4 for ``small``), cut to the input
  size at the offset that puts each cell on its pixel, as FCN's crop layer does.

Both heads place a layer's cell n on input pixel stride x n (where the presets' padded
convolutions centre it) and never rescale a map to fit: scores at the training crops' size and
at the scoring frames' size line up alike.

    model = sb.load("seg.safetensors")          # a network with a segmenter (segment writes it)
    logits = model.segment(rgb)                 # (N, classes, H, W) for float RGB (N,3,H,W)

Sizes: a segmenter sees every image with its shorter side at the side it was trained at
(``FRAME_SIDE`` unless its file records another) and its logits are upsampled bilinearly to the
image's own size, in Python as in ``splitbrain segment`` (``seen_at``, ``upsampled``).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

HEADS = ("hypercolumn", "fcn32s")
HYPERCOLUMN_LAYERS = ("conv1", "conv2", "conv3", "conv4", "conv5")
#: The shorter side of frames a segmenter trains and predicts at (CamVid's 480x360 at 240x180).
FRAME_SIDE = 180
#: The loss's class weights: median frequency (SegNet's CamVid practice), its square root (the
#: default: rare classes lifted less; measured on a drive the heads never saw,
#: docs/results/segmentation.md, "Why the lead is small"), or none.
CLASS_WEIGHTS = ("sqrt-median-freq", "median-freq", "none")


def frame_size(height: int, width: int, side: int) -> tuple[int, int]:
    """(height, width) with the shorter side at ``side``, the aspect ratio kept."""
    scale = side / min(height, width)
    return max(side, round(height * scale)), max(side, round(width * scale))


def seen_at(raw: Tensor, side: int) -> Tensor:
    """Float images (N, C, H, W) as a segmenter sees them: the shorter side at ``side``,
    resized bilinearly with antialiasing."""
    size = frame_size(*raw.shape[-2:], side)
    if size == tuple(raw.shape[-2:]):
        return raw
    return F.interpolate(raw, size, mode="bilinear", antialias=True, align_corners=False)


def upsampled(logits: Tensor, size: tuple[int, int]) -> Tensor:
    """A segmenter's logits, float, upsampled bilinearly to a frame's own ``size``."""
    return F.interpolate(logits.float(), size, mode="bilinear", align_corners=False)


def bilinear_kernel(channels: int, size: int) -> Tensor:
    """(channels, channels, size, size): the transposed convolution that upsamples each
    channel bilinearly (FCN's initialisation); an odd ``size`` 2s - 1 interpolates exactly
    between cells s pixels apart."""
    factor = (size + 1) // 2
    centre = factor - 1 if size % 2 == 1 else factor - 0.5
    ramp = 1 - (torch.arange(size, dtype=torch.float32) - centre).abs() / factor
    weight = torch.zeros(channels, channels, size, size)
    weight[range(channels), range(channels)] = ramp[:, None] * ramp[None, :]
    return weight


def fit(x: Tensor, size: tuple[int, int]) -> Tensor:
    """``x`` cut or extended (repeating its last row and column) to ``size``, from the top
    left: its first pixel stays the input's first."""
    height, width = size
    x = x[..., :height, :width]
    short = (0, width - x.shape[-1], 0, height - x.shape[-2])
    return F.pad(x, short, mode="replicate") if any(short) else x


def upsample(x: Tensor, stride: int, size: tuple[int, int]) -> Tensor:
    """A layer's map -> the pixel grid, bilinearly, with cell n on pixel ``stride`` x n, where
    the padded convolutions of the ``paper`` and ``small`` presets centre it."""
    h, w = x.shape[-2:]
    if stride > 1:
        grid = ((h - 1) * stride + 1, (w - 1) * stride + 1)
        x = F.interpolate(x, grid, mode="bilinear", align_corners=True)
    return fit(x, size)


class HypercolumnHead(nn.Module):
    """Per-pixel linear classifier on the hypercolumn of layers of ``channels`` channels and
    ``strides`` pixels per cell."""

    def __init__(self, channels: list[int], classes: int, strides: list[int]) -> None:
        super().__init__()
        self.strides = strides
        self.norms = nn.ModuleList(nn.BatchNorm2d(c, affine=False) for c in channels)
        self.scores = nn.ModuleList(
            nn.Conv2d(c, classes, 1, bias=k == 0) for k, c in enumerate(channels)
        )

    def forward(self, features: list[Tensor], size: tuple[int, int]) -> Tensor:
        total = None
        parts = zip(features, self.norms, self.scores, self.strides, strict=True)
        for x, norm, score, stride in parts:
            logits = upsample(score(norm(x.float())), stride, size)
            total = logits if total is None else total + logits
        return total


class FCN32sHead(nn.Module):
    """FCN-32s: a 1x1 score layer on the top layer and a transposed convolution by its
    stride, whose output is cut so that cell n lands on pixel stride x n."""

    def __init__(self, channels: list[int], classes: int, strides: list[int]) -> None:
        super().__init__()
        if len(channels) != 1:
            raise ValueError(f"fcn32s reads one layer, got {len(channels)}")
        self.score = nn.Conv2d(channels[0], classes, 1)
        nn.init.zeros_(self.score.weight)
        nn.init.zeros_(self.score.bias)
        self.stride = strides[0]
        if self.stride > 1:
            size = 2 * self.stride - 1
            self.upsample = nn.ConvTranspose2d(classes, classes, size, self.stride, bias=False)
            self.upsample.weight.data.copy_(bilinear_kernel(classes, size))

    def forward(self, features: list[Tensor], size: tuple[int, int]) -> Tensor:
        logits = self.score(features[0])
        if self.stride > 1:  # the kernel's centre, stride - 1 pixels in, is cell 0's pixel
            offset = self.stride - 1
            logits = self.upsample(logits)[..., offset:, offset:]
        return fit(logits, size)


def build_head(kind: str, channels: list[int], classes: int, strides: list[int]) -> nn.Module:
    """The segmentation head ``kind`` (``HEADS``) for layers of ``channels`` at ``strides``."""
    if kind == "hypercolumn":
        return HypercolumnHead(channels, classes, strides)
    if kind == "fcn32s":
        return FCN32sHead(channels, classes, strides)
    raise ValueError(f"unknown segmentation head {kind!r}; choose from {', '.join(HEADS)}")
