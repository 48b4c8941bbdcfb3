"""RGBDDataset: RGB + HHA + validity items for the RGB-D split (SPEC section 6).

HHA needs normals and a gravity estimate over the whole frame, so it is computed once per
frame at the source's resolution (where the intrinsics belong) and cached, already resized,
in memory; an item is then only a crop and a mirror. Items are uint8 (7, crop, crop): RGB, HHA
rounded to 0..255 and the validity mask * 255, which ``ChannelSpace.decode_batch`` of the
``rgbd`` split turns back into RGB in [0, 1], HHA in [0, 255] and a boolean mask.
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch
from torch import Tensor
from torch.utils.data import Dataset
from tqdm import tqdm

from ..depth import Intrinsics, hha
from .base import UNLABELED
from .channels import crop_frame, resize_frame, resized_shape
from .dataset import ImageDataset
from .errors import DatasetError
from .rgbd import RGBDSource

__all__ = ["RGBDDataset", "RGBDSelection"]

HHA_BATCH = 16  # frames per hha() call: beyond this the per-call overhead no longer matters


class RGBDSelection(RGBDSource):
    """Frames of one or more sources, in order, optionally only those at ``indices`` (of the
    concatenation): several files as one training set, and held-out subsets of them."""

    def __init__(self, sources: Sequence[RGBDSource], indices: Sequence[int] | None = None) -> None:
        self.sources = list(sources)
        frames = [(s, i) for s in self.sources for i in range(len(s))]
        self._frames = frames if indices is None else [frames[i] for i in indices]
        self.path = Path("+".join(str(s.path) for s in self.sources))
        if all(s.labels is not None for s in self.sources):
            self.labels = np.array([s.labels[i] for s, i in self._frames], dtype=np.int64)

    def __len__(self) -> int:
        return len(self._frames)

    def __getitem__(self, i: int) -> tuple[np.ndarray, np.ndarray]:
        source, j = self._frames[self._index(i)]
        return source[j]

    def intrinsics(self, i: int) -> Intrinsics | None:
        source, j = self._frames[self._index(i)]
        return source.intrinsics(j)

    def name(self, i: int) -> str:
        source, j = self._frames[self._index(i)]
        return source.name(j)


class RGBDDataset(Dataset):
    """(uint8 (7, crop, crop), label) items: RGB, HHA, validity * 255; label -1 when none.

    Every frame's HHA is computed once here (batched, with a progress bar) with the source's
    intrinsics, or the Kinect-like default for frames without (one warning for all of them).
    The frame is then resized with its shorter side to ``resize``: RGB bilinear
    (antialiased), HHA and the mask nearest, so valid and invalid depth are never blended and
    the mask stays exactly where HHA is defined. Items are a random crop mirrored half the
    time (``train``; all seven channels together: HHA is mirror-invariant) or the centre crop.
    """

    collate = staticmethod(ImageDataset.collate)

    def __init__(
        self,
        source: RGBDSource,
        resize: int | None,
        crop: int,
        train: bool = True,
        progress: bool = True,
    ) -> None:
        if crop < 1 or (resize is not None and resize < crop):
            raise ValueError(f"need 1 <= crop <= resize, got crop={crop}, resize={resize}")
        if len(source) == 0:
            raise DatasetError(f"{source.path}: no RGB-D frames")
        self.source, self.resize, self.crop, self.train = source, resize, crop, train
        self.labels = source.labels
        self.frames: list[Tensor] = []
        valid_fraction: list[float] = []
        cameras = [source.intrinsics(i) for i in range(len(source))]
        self.without_intrinsics = sum(c is None for c in cameras)
        if self.without_intrinsics:
            warnings.warn(
                f"{source.path}: {self.without_intrinsics} of {len(source)} frames have no "
                "intrinsics; their HHA uses the Kinect-like default camera (docs/RGBD.md)",
                stacklevel=2,
            )
        bar = tqdm(total=len(source), desc="HHA", unit="frame", leave=False, disable=not progress)
        batch: list[tuple[np.ndarray, np.ndarray, Intrinsics | None]] = []
        with bar:
            for i in range(len(source)):
                rgb, depth = source[i]
                if batch and (depth.shape != batch[0][1].shape or len(batch) == HHA_BATCH):
                    valid_fraction.extend(self._encode(batch))
                    bar.update(len(batch))
                    batch = []
                batch.append((rgb, depth, cameras[i]))
            valid_fraction.extend(self._encode(batch))
            bar.update(len(batch))
        self.valid_fraction = float(np.mean(valid_fraction))

    def _encode(self, batch: list[tuple[np.ndarray, np.ndarray, Intrinsics | None]]) -> list[float]:
        """HHA of frames of one shape in one call; caches them, returns their valid fractions."""
        h, w = batch[0][1].shape
        depth = torch.from_numpy(np.stack([d for _, d, _ in batch]))
        out = hha(depth, [k or Intrinsics.default(h, w) for _, _, k in batch])
        for (rgb, _, _), image, valid in zip(batch, out.image, out.valid, strict=True):
            self.frames.append(self._resized(rgb, image, valid))
        return out.valid.float().mean((1, 2)).tolist()

    def _resized(self, rgb: np.ndarray, image: Tensor, valid: Tensor) -> Tensor:
        """One cached frame: uint8 (7, h, w) at the training resolution."""
        size = resized_shape(*valid.shape, self.resize, self.crop)
        rgb = resize_frame(
            torch.from_numpy(np.ascontiguousarray(rgb.transpose(2, 0, 1))), size, "bilinear"
        )
        depth = torch.cat((image.round().clamp(0, 255), valid[None] * 255.0)).to(torch.uint8)
        return torch.cat((rgb, resize_frame(depth, size, "nearest")))

    def __len__(self) -> int:
        return len(self.frames)

    def __getitem__(self, i: int) -> tuple[Tensor, int]:
        label = UNLABELED if self.labels is None else int(self.labels[i])
        return crop_frame(self.frames[i], self.crop, self.train), label

    def report(self) -> str:
        """One line for logs: frames, how much depth is usable, how many cameras were guessed."""
        h, w = self.frames[0].shape[-2:]
        return (
            f"RGB-D data: {len(self)} frames ({h}x{w} after resize, "
            f"{'random' if self.train else 'centre'} {self.crop} px crops), mean valid-depth "
            f"(HHA) fraction {self.valid_fraction:.1%}, {self.without_intrinsics} frames without "
            "intrinsics (default camera)"
        )
