"""Resize and crop uint8 frames of any channel count into (C, crop, crop) uint8 tensors.

The one resize and crop of the package: images, channel stacks and RGB-D frames all come
through here. Pixels stay uint8: float and Lab conversion happen later, batched, on the
training device, so workers move a quarter of the bytes. Resizing is torch's uint8 bilinear
interpolation with antialiasing (within one grey level of Pillow's, 2-3x faster here), or
nearest for channels that must never blend (masks, depth codes). Random choices come from
torch's global generator, which the sample stream seeds per item (``train/stream.py``).
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

from ..segmentation import frame_size

Frame = np.ndarray | Tensor  # (H, W, C) uint8 array, or (C, H, W) uint8 tensor


def as_chw(frame: Frame) -> Tensor:
    """An (H, W, C) uint8 array as a (C, H, W) tensor view; tensors pass through."""
    if isinstance(frame, Tensor):
        return frame
    return torch.from_numpy(np.asarray(frame)).permute(2, 0, 1)


def resized_shape(height: int, width: int, resize: int | None, crop: int) -> tuple[int, int]:
    """(height, width) with the shorter side at ``resize``; with None, only frames smaller
    than the crop grow (to the crop)."""
    side = resize if resize is not None else max(crop, min(height, width))
    return frame_size(height, width, side)


def resize_frame(frame: Tensor, size: tuple[int, int], nearest: slice | None = None) -> Tensor:
    """uint8 (C, H, W) -> uint8 (C, *size): bilinear and antialiased, except the channels
    ``nearest`` selects, which take the nearest pixel centre (never blending values)."""
    if tuple(frame.shape[-2:]) == tuple(size):
        return frame
    # NHWC is the layout of the fast uint8 kernels; a permuted HWC array already is.
    x = frame[None].contiguous(memory_format=torch.channels_last)
    out = F.interpolate(x, size=size, mode="bilinear", antialias=True, align_corners=False)
    if nearest is not None:
        out[:, nearest] = F.interpolate(x[:, nearest], size=size, mode="nearest-exact")
    return out[0]


def crop_frame(frame: Tensor, crop: int, train: bool, mirror: bool = True) -> Tensor:
    """A random ``crop`` square, mirrored half the time (``train``), or the centre square;
    always a contiguous copy, so callers may modify it without touching a cached frame."""
    height, width = frame.shape[-2:]
    if train:
        top = int(torch.randint(height - crop + 1, ()))
        left = int(torch.randint(width - crop + 1, ()))
        out = frame[:, top : top + crop, left : left + crop]
        if mirror and bool(torch.rand(()) < 0.5):
            out = out.flip(-1)
    else:
        top, left = (height - crop) // 2, (width - crop) // 2
        out = frame[:, top : top + crop, left : left + crop]
    return out.clone(memory_format=torch.contiguous_format)


class _Transform:
    """Resize the shorter side to ``resize`` (None: only frames smaller than the crop grow),
    then crop a ``crop`` square; frames are (H, W, C) arrays or (C, H, W) tensors."""

    train = False

    def __init__(self, resize: int | None, crop: int, nearest: slice | None = None) -> None:
        if crop < 1 or (resize is not None and resize < crop):
            raise ValueError(f"need 1 <= crop <= resize, got crop={crop}, resize={resize}")
        self.resize = resize
        self.crop = crop
        self.nearest = nearest  # channels resized by nearest pixel (a mask's class indices)

    @property
    def largest_side(self) -> int | None:
        """The largest shorter side a frame is resized to (what decoding must keep)."""
        return self.resize

    def side(self) -> int | None:
        """This frame's shorter side after the resize."""
        return self.resize

    def resized(self, frame: Frame, nearest: slice | None = None) -> Tensor:
        """The (C, h, w) frame at the training resolution, before the crop."""
        frame = as_chw(frame)
        size = resized_shape(*frame.shape[-2:], self.side(), self.crop)
        return resize_frame(frame, size, nearest)

    def cropped(self, frame: Tensor) -> Tensor:
        return crop_frame(frame, self.crop, self.train)

    def __call__(self, frame: Frame) -> Tensor:
        """A frame -> (C, crop, crop) uint8 tensor."""
        return self.cropped(self.resized(frame, self.nearest))

    def __repr__(self) -> str:
        return f"{type(self).__name__}(resize={self.resize}, crop={self.crop})"


class TrainTransform(_Transform):
    """Resize, take a random ``crop`` square, mirror half of them (``mirror``). With
    ``resize_max``, each frame's shorter side is drawn uniformly from ``resize..resize_max``
    (scale jittering, Simonyan & Zisserman 2015): the crops of a few thousand photographs then
    differ in scale as well as position, which curbs a network's memorising them."""

    train = True

    def __init__(
        self,
        resize: int | None,
        crop: int,
        mirror: bool = True,
        resize_max: int | None = None,
        nearest: slice | None = None,
    ) -> None:
        super().__init__(resize, crop, nearest)
        if resize_max is not None and (resize is None or resize_max < resize):
            raise ValueError(f"need resize <= resize_max, got {resize} and {resize_max}")
        self.mirror = mirror
        self.resize_max = resize_max

    @property
    def largest_side(self) -> int | None:
        return self.resize_max or self.resize

    def side(self) -> int | None:
        if self.resize_max is None:
            return self.resize
        return self.resize + int(torch.randint(self.resize_max - self.resize + 1, ()))

    def cropped(self, frame: Tensor) -> Tensor:
        return crop_frame(frame, self.crop, True, self.mirror)

    def __repr__(self) -> str:
        resize = f"{self.resize}..{self.resize_max}" if self.resize_max else self.resize
        return f"TrainTransform(resize={resize}, crop={self.crop}, mirror={self.mirror})"


class EvalTransform(_Transform):
    """Resize and take the centre ``crop`` square: deterministic."""
