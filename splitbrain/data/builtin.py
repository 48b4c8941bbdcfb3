"""The offline default dataset: random crops of the colour photographs inside scikit-image.

The scikit-image wheel bundles a handful of real colour photographs. Read straight from the
installed package (never through ``skimage.data``'s loaders, which may call pooch to download),
they give a run real photographic statistics with no data on disk and no network. Item ``i`` is
a square crop of 64-160 px at a random position of one photo, drawn from a generator seeded by
(split, i), so every process and every run sees the same crop for the same index. Items are
labeled by photo (``classes`` are the photo names), which is enough for a linear-probe smoke test.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

import numpy as np

from .base import ImageSource
from .decode import decode_file
from .errors import DatasetError

#: The real colour photographs of the scikit-image wheel (0.22-0.26), in label order.
PHOTOS = (
    "astronaut.png",
    "chelsea.png",
    "coffee.png",
    "rocket.jpg",
    "hubble_deep_field.jpg",
    "retina.jpg",
    "ihc.png",
    "motorcycle_left.png",
    "motorcycle_right.png",
)
DEFAULT_COUNT = 4096
MIN_CROP, MAX_CROP = 64, 160
#: Different crops for the evaluation split, from the same photos.
SPLIT_SEEDS = {"train": 0, "test": 1, "val": 1}


def photo_dir() -> Path:
    """The ``skimage/data`` folder of the installed wheel, found without importing skimage."""
    spec = importlib.util.find_spec("skimage")
    if spec is None or not spec.submodule_search_locations:
        raise DatasetError("skimage: scikit-image is not installed (pip install scikit-image)")
    return Path(next(iter(spec.submodule_search_locations))) / "data"


class SkimageSource(ImageSource):
    """``count`` random square crops of the bundled photographs, decoded once into memory."""

    format = "skimage"

    def __init__(self, count: int = DEFAULT_COUNT, split: str = "train") -> None:
        if split not in SPLIT_SEEDS:
            raise DatasetError(f"skimage: no split {split!r}; choose from {sorted(SPLIT_SEEDS)}")
        if count < 1:
            raise DatasetError(f"skimage:{count}: the number of crops must be positive")
        folder = photo_dir()
        names = [name for name in PHOTOS if (folder / name).is_file()]
        if not names:
            raise DatasetError(f"skimage: none of {', '.join(PHOTOS)} found in {folder}")
        self.photos = [decode_file(str(folder / name))[0] for name in names]
        self.seed = SPLIT_SEEDS[split]
        self.crops = np.array([self._crop(i) for i in range(count)], dtype=np.int64)
        classes = [name.rsplit(".", 1)[0] for name in names]
        super().__init__(str(count), split, count, self.crops[:, 0], classes)

    def _crop(self, i: int) -> tuple[int, int, int, int]:
        """(photo, top, left, side) of item ``i``, a pure function of (split, i)."""
        rng = np.random.default_rng([self.seed, i])
        photo = int(rng.integers(len(self.photos)))
        height, width = self.photos[photo].shape[:2]
        side = int(rng.integers(MIN_CROP, min(MAX_CROP, height, width) + 1))
        top = int(rng.integers(height - side + 1))
        left = int(rng.integers(width - side + 1))
        return photo, top, left, side

    def _read(self, i: int, min_side: int | None = None) -> tuple[np.ndarray, str | None]:
        photo, top, left, side = self.crops[i]
        return self.photos[photo][top : top + side, left : left + side].copy(), None

    def check(self, i: int) -> tuple[str | None, tuple[int, int]]:
        side = int(self.crops[self._index(i), 3])
        return None, (side, side)

    def name(self, i: int) -> str:
        photo, top, left, side = self.crops[self._index(i)]
        return f"skimage:{self.classes[photo]}[{top}:{top + side}, {left}:{left + side}]"
