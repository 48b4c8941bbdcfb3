"""The interface every image source offers, whatever its storage, plus in-memory array sources.

A source is an indexed, fixed-order list of RGB images with optional integer labels. It does no
augmentation and keeps no state between calls, so DataLoader worker processes can share it.
"""

from __future__ import annotations

import numpy as np

#: Label of an item that has none (an unlabeled split, or a photo outside any class folder).
UNLABELED = -1


class ImageSource:
    """An indexed list of images: ``load(i)`` gives (H, W, 3) uint8 RGB and an int label."""

    format = "?"
    #: Whether ``check`` must decode items, which a scan can spread over processes.
    decodes_files = False

    def __init__(
        self,
        path: str,
        split: str,
        count: int,
        labels: np.ndarray | None = None,
        classes: list[str] | None = None,
    ) -> None:
        self.path = path
        self.split = split
        self._count = count
        self.labels = None if labels is None else np.asarray(labels, dtype=np.int64)
        self.classes = classes
        if self.labels is not None and len(self.labels) != count:
            raise ValueError(f"{len(self.labels)} labels for {count} images")

    @property
    def spec(self) -> str:
        """The ``FORMAT:PATH`` string that opens this source again."""
        return f"{self.format}:{self.path}"

    def __len__(self) -> int:
        return self._count

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.describe()}>"

    def _index(self, i: int) -> int:
        if not 0 <= i < self._count:
            raise IndexError(f"item {i} out of range for {self._count} items of {self.spec}")
        return int(i)

    def label(self, i: int) -> int:
        """The class index of item ``i``, or -1 when it has none."""
        return UNLABELED if self.labels is None else int(self.labels[self._index(i)])

    def load(self, i: int) -> tuple[np.ndarray, int]:
        """Item ``i`` as ((H, W, 3) uint8 RGB, label); raises BadImage when it cannot be decoded."""
        image, label, _ = self.load_with_note(i)
        return image, label

    def load_with_note(self, i: int) -> tuple[np.ndarray, int, str | None]:
        """Like ``load``, plus the conversion the item needed to become RGB (None when none)."""
        i = self._index(i)
        image, note = self._read(i)
        return image, self.label(i), note

    def check(self, i: int) -> tuple[str | None, tuple[int, int]]:
        """For a scan: (the conversion item ``i`` needs, (height, width)); may raise BadImage."""
        image, _, note = self.load_with_note(i)
        return note, (image.shape[0], image.shape[1])

    def name(self, i: int) -> str:
        """A human-readable id of item ``i`` for logs and error messages."""
        return f"{self.spec}[{self._index(i)}]"

    def describe(self) -> str:
        """One line: format, path, split, number of items, classes."""
        if self.classes is None:
            classes = "unlabeled"
        else:
            shown = ", ".join(self.classes[:10]) + (", ..." if len(self.classes) > 10 else "")
            classes = f"{len(self.classes)} classes ({shown})"
        return f"{self.format} {self.path} split={self.split}: {len(self):,} images, {classes}"

    def _read(self, i: int) -> tuple[np.ndarray, str | None]:
        """The (H, W, 3) uint8 RGB image of in-range item ``i`` and its conversion note."""
        raise NotImplementedError


class ArraySource(ImageSource):
    """Images already decoded in an (N, H, W, 3) uint8 array (or a memory map of one)."""

    def __init__(
        self,
        path: str,
        split: str,
        images: np.ndarray,
        labels: np.ndarray | None = None,
        classes: list[str] | None = None,
    ) -> None:
        super().__init__(path, split, len(images), labels, classes)
        self.images = images

    def _read(self, i: int) -> tuple[np.ndarray, str | None]:
        return np.array(self.images[i]), None  # a copy: callers may write into it

    def check(self, i: int) -> tuple[str | None, tuple[int, int]]:
        self._index(i)
        return None, tuple(self.images.shape[1:3])
