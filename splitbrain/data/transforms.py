"""Resize and crop uint8 images into (3, crop, crop) uint8 tensors, without torchvision.

Pixels stay uint8 here: float and Lab conversion happen later, batched, on the training device,
so workers move a quarter of the bytes. Random choices come from torch's global generator,
which DataLoader seeds differently in each worker from the main process's seed, so a run
seeded with ``torch.manual_seed`` is reproducible for a given number of workers.
"""

from __future__ import annotations

import numpy as np
import torch
from PIL import Image


def resize_shorter(image: np.ndarray, side: int) -> np.ndarray:
    """Scale ``image`` so its shorter side is ``side`` (bilinear, antialiased when shrinking)."""
    height, width = image.shape[:2]
    if min(height, width) == side:
        return image
    scale = side / min(height, width)
    size = (max(side, round(width * scale)), max(side, round(height * scale)))
    # Pillow's BILINEAR widens its kernel by the scale factor when downsampling: antialiased.
    return np.asarray(Image.fromarray(image).resize(size, Image.Resampling.BILINEAR))


def _to_tensor(crop: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(np.array(crop.transpose(2, 0, 1), order="C"))  # a writable copy


class _Transform:
    def __init__(self, resize: int | None, crop: int) -> None:
        if crop < 1 or (resize is not None and resize < crop):
            raise ValueError(f"need 1 <= crop <= resize, got crop={crop}, resize={resize}")
        self.resize = resize
        self.crop = crop

    def _resized(self, image: np.ndarray) -> np.ndarray:
        """Resized to ``resize``; with ``resize=None`` only images smaller than the crop grow."""
        if self.resize is not None:
            return resize_shorter(image, self.resize)
        if min(image.shape[:2]) < self.crop:
            return resize_shorter(image, self.crop)
        return image


class TrainTransform(_Transform):
    """Resize the shorter side to ``resize``, take a random ``crop`` square, mirror half of them."""

    def __init__(self, resize: int | None, crop: int, mirror: bool = True) -> None:
        super().__init__(resize, crop)
        self.mirror = mirror

    def __call__(self, image: np.ndarray) -> torch.Tensor:
        """(H, W, 3) uint8 -> (3, crop, crop) uint8 tensor."""
        image = self._resized(image)
        height, width = image.shape[:2]
        top = int(torch.randint(height - self.crop + 1, ()))
        left = int(torch.randint(width - self.crop + 1, ()))
        crop = image[top : top + self.crop, left : left + self.crop]
        if self.mirror and bool(torch.rand(()) < 0.5):
            crop = crop[:, ::-1]
        return _to_tensor(crop)

    def __repr__(self) -> str:
        return f"TrainTransform(resize={self.resize}, crop={self.crop}, mirror={self.mirror})"


class EvalTransform(_Transform):
    """Resize the shorter side to ``resize`` and take the centre ``crop`` square: deterministic."""

    def __call__(self, image: np.ndarray) -> torch.Tensor:
        """(H, W, 3) uint8 -> (3, crop, crop) uint8 tensor."""
        image = self._resized(image)
        height, width = image.shape[:2]
        top, left = (height - self.crop) // 2, (width - self.crop) // 2
        return _to_tensor(image[top : top + self.crop, left : left + self.crop])

    def __repr__(self) -> str:
        return f"EvalTransform(resize={self.resize}, crop={self.crop})"
