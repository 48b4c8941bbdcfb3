"""ImageDataset: a torch Dataset over an ImageSource that skips bad items instead of crashing.

Photographs and channel stacks alike: items are (C, crop, crop) uint8 tensors."""

from __future__ import annotations

import numpy as np
import torch
from torch.utils.data import Dataset, get_worker_info

from .badlog import BadImageLog
from .base import ImageSource
from .errors import BadImage, DatasetError
from .transforms import EvalTransform, TrainTransform

Item = tuple[torch.Tensor, int]


class ImageDataset(Dataset):
    """(uint8 (C, crop, crop) image, int label) items, or None for an item that proves bad.

    A bad item (undecodable, or shorter side under ``min_side``, default half the crop) is
    recorded in ``log`` with its reason and logged by name, and ``collate`` drops it. When
    ``log`` came from ``scan_source(source)``, the items it found bad are left out up front.
    ``channels`` is the count the model expects: a mismatch fails here, naming the fix, rather
    than as a shape error inside the first step. ``reduced_decode``: JPEGs larger than twice
    the transform's resize are decoded at 1/2, 1/4 or 1/8 scale (never below the resize),
    several times faster than a full decode followed by the same resize, and within a few grey
    levels of it (docs/DATA.md).
    """

    def __init__(
        self,
        source: ImageSource,
        transform: TrainTransform | EvalTransform,
        log: BadImageLog | None = None,
        min_side: int | None = None,
        channels: int | None = None,
        reduced_decode: bool = True,
    ) -> None:
        if channels is not None and channels != source.num_channels:
            raise DatasetError(
                f"{source.spec}: the data has {source.num_channels} channels but the split "
                f"expects {channels}; give the split's n= the data's count "
                f"(e.g. channels:A/B:n={source.num_channels})"
            )
        self.source = source
        self.transform = transform
        self.log = log if log is not None else BadImageLog()
        self.log.bind(source)
        self.min_side = transform.crop // 2 if min_side is None else min_side
        self.decode_side = transform.largest_side if reduced_decode else None
        self.indices = self.log.good_indices()

    def __len__(self) -> int:
        return len(self.indices)

    def __getitem__(self, k: int) -> Item | None:
        i = int(self.indices[k])
        try:
            image, label, note = self.source.load_with_note(i, self.decode_side)
        except BadImage as bad:
            self.log.record(i, bad.reason, bad.path, bad.detail)
            return None
        height, width = image.shape[:2]
        if min(height, width) < self.min_side:
            detail = f"{height}x{width}, shorter side under {self.min_side}"
            self.log.record(i, "too small", self.source.name(i), detail)
            return None
        self.log.record(i, note)
        return self.transform(image), label

    def with_index(self) -> WithIndex:
        """The same items carrying their source index instead of their label."""
        return WithIndex(self)

    @staticmethod
    def collate(batch: list[Item | None]) -> tuple[torch.Tensor, torch.Tensor]:
        """Stack the good items: (uint8 (B, C, c, c), int64 (B,)); when all were bad, B is 0
        (and the empty tensor's shape (0, 3, 0, 0): consumers skip such batches)."""
        items = [item for item in batch if item is not None]
        if not items:
            return torch.zeros((0, 3, 0, 0), dtype=torch.uint8), torch.zeros(0, dtype=torch.int64)
        images = torch.empty((len(items), *items[0][0].shape), dtype=torch.uint8)
        if get_worker_info() is not None:
            images.share_memory_()  # the batch then reaches the main process without a copy
        # numpy's single-threaded copy: torch.stack's thread pool can stall for a tenth of a
        # second per batch in a main process whose cores are busy with other work
        np.stack([image.numpy() for image, _ in items], out=images.numpy())
        return images, torch.tensor([label for _, label in items], dtype=torch.int64)


class WithIndex(Dataset):
    """An ImageDataset whose items carry their source index instead of their label: to look
    up rows of a label matrix (multi-label fine-tuning), or to say which file a row of
    extracted features came from."""

    def __init__(self, dataset: ImageDataset) -> None:
        self.dataset = dataset

    def __len__(self) -> int:
        return len(self.dataset)

    def __getitem__(self, k: int) -> Item | None:
        item = self.dataset[k]
        return None if item is None else (item[0], int(self.dataset.indices[k]))
