"""STL-10 in the official binary layout, memory-mapped so the 100k unlabeled images stay on disk."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from .base import UNLABELED, ImageSource
from .errors import DatasetError

SIDE = 96
#: split -> the (images, labels) files it concatenates; labels None for the unlabeled part.
SPLITS = {
    "train": [("train_X.bin", "train_y.bin")],
    "test": [("test_X.bin", "test_y.bin")],
    "unlabeled": [("unlabeled_X.bin", None)],
    "train+unlabeled": [("train_X.bin", "train_y.bin"), ("unlabeled_X.bin", None)],
}


def stl10_dir(path: Path) -> Path:
    """The ``stl10_binary`` folder given it or its parent."""
    return path / "stl10_binary" if (path / "stl10_binary").is_dir() else path


class Stl10Source(ImageSource):
    """Each image is stored as 3 planes (R, G, B) of 96x96 bytes in column-major order."""

    format = "stl10"

    def __init__(self, path: str | Path, split: str = "train") -> None:
        split = "test" if split == "val" else split  # the only held-out split
        if split not in SPLITS:
            raise DatasetError(f"stl10: no split {split!r}; choose from {sorted(SPLITS)}")
        root = stl10_dir(Path(path).expanduser().resolve())
        self.parts: list[tuple[Path, int, int]] = []  # (images file, count, first item)
        labels, count = [], 0
        for images_name, labels_name in SPLITS[split]:
            file = root / images_name
            if not file.is_file():
                raise DatasetError(f"stl10:{root}: missing {images_name}")
            size = file.stat().st_size
            if size % (3 * SIDE * SIDE):
                raise DatasetError(f"stl10:{file}: {size} bytes is not a whole number of images")
            n = size // (3 * SIDE * SIDE)
            self.parts.append((file, n, count))
            count += n
            if labels_name is None:
                labels.append(np.full(n, UNLABELED, dtype=np.int64))
            else:
                labels.append(self._labels(root / labels_name, n))
        names_file = root / "class_names.txt"
        classes = None
        if names_file.is_file():
            classes = [line.strip() for line in names_file.read_text().splitlines() if line.strip()]
        has_labels = split != "unlabeled"
        super().__init__(
            str(root),
            split,
            count,
            np.concatenate(labels) if has_labels else None,
            classes if has_labels else None,
        )
        self._maps: dict[Path, np.memmap] = {}

    def __getstate__(self) -> dict:
        # Worker processes reopen the memory maps instead of receiving gigabytes of pixels.
        return {**self.__dict__, "_maps": {}}

    @staticmethod
    def _labels(file: Path, count: int) -> np.ndarray:
        if not file.is_file():
            raise DatasetError(f"stl10:{file.parent}: missing {file.name}")
        labels = np.fromfile(file, dtype=np.uint8).astype(np.int64) - 1  # stored as 1..10
        if len(labels) != count:
            raise DatasetError(f"stl10:{file}: {len(labels)} labels for {count} images")
        return labels

    def _part(self, i: int) -> tuple[Path, np.memmap, int]:
        file, n, start = next(p for p in reversed(self.parts) if p[2] <= i)
        if file not in self._maps:
            # [item, channel, column, row]: column-major planes, transposed on load
            self._maps[file] = np.memmap(file, np.uint8, "r", shape=(n, 3, SIDE, SIDE))
        return file, self._maps[file], start

    def _read(self, i: int, min_side: int | None = None) -> tuple[np.ndarray, str | None]:
        _, images, start = self._part(i)
        return np.ascontiguousarray(images[i - start].transpose(2, 1, 0)), None

    def check(self, i: int) -> tuple[str | None, tuple[int, int]]:
        self._index(i)
        return None, (SIDE, SIDE)

    def name(self, i: int) -> str:
        i = self._index(i)
        file, _, start = next(p for p in reversed(self.parts) if p[2] <= i)
        return f"stl10:{file.name}[{i - start}]"
