"""The protocol every data source follows, whatever it holds: photographs, channel stacks or
RGB-D frames, plus in-memory array sources.

A source is an indexed, fixed-order list of items with optional integer labels. It does no
augmentation and keeps no state between calls, so DataLoader worker processes can share it.
Indices follow Python's sequences: ``-len(source) <= i < len(source)``, negative ones counting
from the end; any other index raises IndexError naming the source.
"""

from __future__ import annotations

from typing import Any

import numpy as np


def plural(count: int, noun: str) -> str:
    """ "1 image", "2 images", "1,000 images"."""
    return f"{count:,} {noun}{'' if count == 1 else 's'}"


#: Label of an item that has none (an unlabeled split, or a photo outside any class folder).
UNLABELED = -1


class Source:
    """``source[i]`` is item i; ``load(i)`` is (item, label); ``name(i)`` identifies it in logs.

    Subclasses give ``__len__``, ``_item(i)`` for an index already in range and non-negative,
    and ``path``; ``labels`` (one int per item, -1 for none) and ``classes`` when they know them.
    """

    format = "?"
    path: Any = ""
    labels: np.ndarray | None = None
    classes: list[str] | None = None

    def __len__(self) -> int:
        raise NotImplementedError

    def _item(self, i: int) -> Any:
        raise NotImplementedError

    @property
    def spec(self) -> str:
        """The ``FORMAT:PATH`` string that opens this source again."""
        return f"{self.format}:{self.path}"

    def _index(self, i: int) -> int:
        """``i`` as a non-negative index, or IndexError."""
        n = len(self)
        if not -n <= i < n:
            raise IndexError(f"item {i} out of range for {n} items of {self.spec}")
        return int(i) % n

    def __getitem__(self, i: int) -> Any:
        return self._item(self._index(i))

    def load(self, i: int) -> tuple[Any, int]:
        """(item ``i``, its label)."""
        i = self._index(i)
        return self._item(i), self.label(i)

    def label(self, i: int) -> int:
        """The class index of item ``i``, or -1 when it has none."""
        return UNLABELED if self.labels is None else int(self.labels[self._index(i)])

    def name(self, i: int) -> str:
        """A human-readable id of item ``i`` for logs and error messages."""
        return f"{self.spec}[{self._index(i)}]"

    def describe(self) -> str:
        """One line for logs: what was read and how many items."""
        return f"{self.spec}: {len(self):,} items"

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.describe()}>"


class ImageSource(Source):
    """Images, or stacks of ``num_channels`` uint8 channels: item i is an (H, W, C) array.

    ``load_with_note`` also says which conversion an image needed to become RGB (counted by the
    bad-file log); decoding failures raise ``BadImage``.
    """

    #: Whether ``check`` must decode items, which a scan can spread over processes.
    decodes_files = False
    num_channels = 3

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

    def __len__(self) -> int:
        return self._count

    def _item(self, i: int) -> np.ndarray:
        return self._read(i)[0]

    def load_with_note(
        self, i: int, min_side: int | None = None
    ) -> tuple[np.ndarray, int, str | None]:
        """Like ``load``, plus the conversion the item needed to become RGB (None when none).
        With ``min_side``, a source that decodes files may return the image scaled down, its
        shorter side still at least ``min_side`` (JPEG DCT scaling)."""
        i = self._index(i)
        image, note = self._read(i, min_side)
        return image, self.label(i), note

    def check(self, i: int) -> tuple[str | None, tuple[int, int]]:
        """For a scan: (the conversion item ``i`` needs, (height, width)); may raise BadImage."""
        image, _, note = self.load_with_note(i)
        return note, (image.shape[0], image.shape[1])

    def describe(self) -> str:
        """One line: format, path, split, number of items, channels, classes."""
        if self.classes is None:
            classes = "unlabeled"
        else:
            shown = ", ".join(self.classes[:10]) + (", ..." if len(self.classes) > 10 else "")
            classes = f"{len(self.classes)} classes ({shown})"
        channels = "" if self.num_channels == 3 else f", {self.num_channels} channels"
        count = f"{plural(len(self), 'image')}{channels}"
        return f"{self.format} {self.path} split={self.split}: {count}, {classes}"

    def _read(self, i: int, min_side: int | None = None) -> tuple[np.ndarray, str | None]:
        """The (H, W, C) uint8 array of in-range item ``i`` and its conversion note; see
        ``load_with_note`` for ``min_side``."""
        raise NotImplementedError


class ArraySource(ImageSource):
    """Images already decoded in an (N, H, W, C) uint8 array (or a memory map of one)."""

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
        self.num_channels = images.shape[-1]

    def _read(self, i: int, min_side: int | None = None) -> tuple[np.ndarray, str | None]:
        return np.array(self.images[i]), None  # a copy: callers may write into it

    def check(self, i: int) -> tuple[str | None, tuple[int, int]]:
        self._index(i)
        return None, tuple(self.images.shape[1:3])


class SubsetSource(ImageSource):
    """``count`` items of another source, evenly spread over it (so every class of a
    class-sorted folder keeps some): a quick, deterministic trial on a laptop."""

    def __init__(self, source: ImageSource, count: int) -> None:
        if count < 1:
            raise ValueError(f"a subset needs at least one item, got {count}")
        self.source = source
        self.indices = np.unique(np.linspace(0, len(source) - 1, count).round().astype(np.int64))
        labels = None if source.labels is None else source.labels[self.indices]
        super().__init__(source.path, source.split, len(self.indices), labels, source.classes)
        self.format = source.format
        self.decodes_files = source.decodes_files
        self.num_channels = source.num_channels

    @property
    def spec(self) -> str:
        return self.source.spec

    def name(self, i: int) -> str:
        return self.source.name(int(self.indices[self._index(i)]))

    def _read(self, i: int, min_side: int | None = None) -> tuple[np.ndarray, str | None]:
        return self.source._read(int(self.indices[i]), min_side)

    def check(self, i: int) -> tuple[str | None, tuple[int, int]]:
        return self.source.check(int(self.indices[self._index(i)]))

    def describe(self) -> str:
        return f"{self.source.describe()}; {len(self):,} of them evenly spread (--max-items)"


def spread_items(source: ImageSource, count: int | None) -> ImageSource:
    """``source``, or an evenly spread ``count`` of its items when it has more."""
    return source if count is None or count >= len(source) else SubsetSource(source, count)
