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
  paper preset, whose pool5 keeps the resolution of conv5; 4 for ``small``), then resized to the
  exact input size (the conv arithmetic leaves it a few pixels off).

    model = sb.load("seg.safetensors")          # a network with a segmenter (segment writes it)
    logits = model.segment(rgb)                 # (N, classes, H, W) for float RGB (N,3,H,W)
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

HEADS = ("hypercolumn", "fcn32s")


def bilinear_kernel(channels: int, size: int) -> Tensor:
    """(channels, channels, size, size): the transposed convolution that upsamples each
    channel bilinearly by ``size // 2`` (FCN's initialisation)."""
    factor = (size + 1) // 2
    centre = factor - 1 if size % 2 == 1 else factor - 0.5
    ramp = 1 - (torch.arange(size, dtype=torch.float32) - centre).abs() / factor
    weight = torch.zeros(channels, channels, size, size)
    weight[range(channels), range(channels)] = ramp[:, None] * ramp[None, :]
    return weight


class HypercolumnHead(nn.Module):
    """Per-pixel linear classifier on the hypercolumn of ``channels`` (one entry per layer)."""

    def __init__(self, channels: list[int], classes: int) -> None:
        super().__init__()
        self.norms = nn.ModuleList(nn.BatchNorm2d(c, affine=False) for c in channels)
        self.scores = nn.ModuleList(
            nn.Conv2d(c, classes, 1, bias=k == 0) for k, c in enumerate(channels)
        )

    def forward(self, features: list[Tensor], size: tuple[int, int]) -> Tensor:
        total = None
        for x, norm, score in zip(features, self.norms, self.scores, strict=True):
            logits = F.interpolate(
                score(norm(x.float())), size, mode="bilinear", align_corners=False
            )
            total = logits if total is None else total + logits
        return total


class FCN32sHead(nn.Module):
    """FCN-32s: a 1x1 score layer on the top layer and a transposed convolution by its stride."""

    def __init__(self, channels: list[int], classes: int, stride: int) -> None:
        super().__init__()
        if len(channels) != 1:
            raise ValueError(f"fcn32s reads one layer, got {len(channels)}")
        self.score = nn.Conv2d(channels[0], classes, 1)
        nn.init.zeros_(self.score.weight)
        nn.init.zeros_(self.score.bias)
        self.stride = stride
        if stride > 1:
            self.upsample = nn.ConvTranspose2d(
                classes, classes, 2 * stride, stride, stride // 2, bias=False
            )
            self.upsample.weight.data.copy_(bilinear_kernel(classes, 2 * stride))

    def forward(self, features: list[Tensor], size: tuple[int, int]) -> Tensor:
        logits = self.score(features[0])
        if self.stride > 1:
            logits = self.upsample(logits)
        if tuple(logits.shape[-2:]) != tuple(size):
            logits = F.interpolate(logits, size, mode="bilinear", align_corners=False)
        return logits


def build_head(kind: str, channels: list[int], classes: int, stride: int) -> nn.Module:
    """The segmentation head ``kind`` (``HEADS``) for layers of ``channels`` at ``stride``."""
    if kind == "hypercolumn":
        return HypercolumnHead(channels, classes)
    if kind == "fcn32s":
        return FCN32sHead(channels, classes, stride)
    raise ValueError(f"unknown segmentation head {kind!r}; choose from {', '.join(HEADS)}")
