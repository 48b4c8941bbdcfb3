"""RGBDDataset: RGB + HHA + validity items for the RGB-D split (SPEC section 6).

HHA needs normals and a gravity estimate over the whole frame, so it is computed once per
frame at the source's resolution (where the intrinsics belong) and cached, already resized,
in memory; an item is then only a crop and a mirror. Items are uint8 (7, crop, crop): RGB, HHA
rounded to 0..255 and the validity mask * 255, which ``RGBDSpace.decode_batch`` turns back
into RGB in [0, 1], HHA in [0, 255] and a boolean mask. Resizing and cropping are the data
package's transforms, as for every other kind of data.
"""

from __future__ import annotations

import logging

import numpy as np
import torch
from torch import Tensor
from torch.utils.data import Dataset

from ..data.base import UNLABELED
from ..data.dataset import ImageDataset, WithIndex
from ..data.errors import DatasetError
from ..data.transforms import EvalTransform, TrainTransform
from ..progress import track
from .hha import Intrinsics, hha
from .sources import RGBDSource

log = logging.getLogger("splitbrain.rgbd")

__all__ = ["RGBDDataset"]

HHA_BATCH = 16  # frames per hha() call: beyond this the per-call overhead no longer matters


class RGBDDataset(Dataset):
    """(uint8 (7, crop, crop), label) items: RGB, HHA, validity * 255; label -1 when none.

    Every frame's HHA is computed once here (batched, with a progress bar) with the source's
    intrinsics, or the Kinect-like default for frames without (one warning for all of them).
    The frame is then resized by ``transform``: RGB bilinear (antialiased), HHA and the mask
    nearest, so valid and invalid depth are never blended and the mask stays exactly where HHA
    is defined. Items are its crop: random and mirrored half the time (``TrainTransform``; all
    seven channels together: HHA is mirror-invariant), or the centre (``EvalTransform``).
    """

    collate = staticmethod(ImageDataset.collate)

    def __init__(
        self,
        source: RGBDSource,
        transform: TrainTransform | EvalTransform,
        progress: bool = True,
    ) -> None:
        if len(source) == 0:
            raise DatasetError(f"{source.path}: no RGB-D frames")
        self.source, self.transform, self.crop = source, transform, transform.crop
        self.labels = source.labels
        self.frames: list[Tensor] = []
        valid_fraction: list[float] = []
        cameras = [source.intrinsics(i) for i in range(len(source))]
        self.without_intrinsics = sum(c is None for c in cameras)
        if self.without_intrinsics:
            log.warning(
                f"{source.path}: {self.without_intrinsics} of {len(source)} frames have no "
                "intrinsics; their HHA uses the Kinect-like default camera (docs/RGBD.md)"
            )
        bar = track(total=len(source), desc="HHA", unit="frame", enabled=progress)
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
        depth = torch.cat((image.round().clamp(0, 255), valid[None] * 255.0)).to(torch.uint8)
        frame = torch.cat((torch.from_numpy(rgb).permute(2, 0, 1), depth))
        return self.transform.resized(frame, nearest=slice(3, 7))

    def __len__(self) -> int:
        return len(self.frames)

    def __getitem__(self, i: int) -> tuple[Tensor, int]:
        label = UNLABELED if self.labels is None else int(self.labels[i])
        return self.transform.cropped(self.frames[i]), label

    @property
    def indices(self) -> np.ndarray:
        """Source index of each item: every frame is one (none is skipped)."""
        return np.arange(len(self.frames))

    def with_index(self) -> WithIndex:
        """The same items carrying their frame index instead of their label."""
        return WithIndex(self)

    def report(self) -> str:
        """One line for logs: frames, how much depth is usable, how many cameras were guessed."""
        h, w = self.frames[0].shape[-2:]
        crops = "random" if self.transform.train else "centre"
        return (
            f"RGB-D data: {len(self)} frames ({h}x{w} after resize, {crops} {self.crop} px "
            f"crops), mean valid-depth (HHA) fraction {self.valid_fraction:.1%}, "
            f"{self.without_intrinsics} frames without intrinsics (default camera)"
        )
