"""Multi-band TIFF files as channel stacks (how multispectral bands are often stored).

Read with ``tifffile`` (an optional dependency: a clear error names it), uint8 only, the same
channel count in every file; pixels become value / 255 in the ``identity`` channel space.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from .base import ImageSource
from .errors import DatasetError

TIFF_EXTENSIONS = (".tif", ".tiff")


def _tifffile():
    try:
        import tifffile
    except ImportError:
        raise DatasetError(
            "reading TIFF needs the tifffile package (pip install tifffile), or convert the "
            "data to an npz with an 'images' (N, H, W, C) uint8 array"
        ) from None
    return tifffile


def _tiff_layout(path: Path) -> tuple[tuple[int, ...], str, np.dtype]:
    """Shape, axes and dtype of a TIFF's first series, from its header only."""
    try:
        with _tifffile().TiffFile(path) as tif:
            series = tif.series[0]
            return tuple(series.shape), series.axes, np.dtype(series.dtype)
    except (OSError, ValueError, IndexError) as error:
        raise DatasetError(f"tiff:{path}: unreadable TIFF ({error})") from None


def _channel_axis(path: Path, shape: tuple[int, ...], axes: str) -> int | None:
    """The one axis besides Y and X (samples, planes or pages), or None for a single band."""
    others = [k for k, a in enumerate(axes) if a not in "YX" and shape[k] > 1]
    if "Y" not in axes or "X" not in axes or len(others) > 1:
        raise DatasetError(
            f"tiff:{path}: axes {axes} {shape}: expected one image, (H, W), (H, W, C) or one "
            "page per channel"
        )
    return others[0] if others else None


class TiffSource(ImageSource):
    """TIFF files, one image each: (H, W), (H, W, C) samples, planar (C, H, W), or multi-page
    with one page per channel (how multispectral bands are often stored). ``path`` is one
    file (e.g. a large scene for random crops) or a folder whose ``.tif``/``.tiff`` files are
    the images, sorted by name. Read with ``tifffile``; uint8 only, one channel count."""

    format = "tiff"
    decodes_files = True

    def __init__(self, path: os.PathLike | str, split: str = "train") -> None:
        root = Path(path).expanduser()
        if root.is_dir():
            files = sorted(p for p in root.iterdir() if p.suffix.lower() in TIFF_EXTENSIONS)
        else:
            files = [root] if root.is_file() else []
        if not files:
            raise DatasetError(f"tiff:{root}: no such TIFF file, or no .tif/.tiff in folder")
        self.files, counts = files, set()
        for file in files:
            shape, axes, dtype = _tiff_layout(file)
            if dtype != np.uint8:
                raise DatasetError(
                    f"tiff:{file}: {dtype} samples; only uint8 is read (values / 255), scale to "
                    "0..255 first (docs/CHANNELS.md)"
                )
            axis = _channel_axis(file, shape, axes)
            counts.add(1 if axis is None else shape[axis])
        if len(counts) > 1:
            raise DatasetError(f"tiff:{root}: files differ in channel count {sorted(counts)}")
        self.num_channels = counts.pop()
        super().__init__(str(root), split, len(files))

    def _read(self, i: int, min_side: int | None = None) -> tuple[np.ndarray, str | None]:
        file = self.files[i]
        with _tifffile().TiffFile(file) as tif:
            series = tif.series[0]
            image, axes = series.asarray(), series.axes
        axis = _channel_axis(file, image.shape, axes)
        keep = [k for k, a in enumerate(axes) if a in "YX" or k == axis]
        image = image.reshape([image.shape[k] for k in keep])  # drops the singleton axes
        if axis is None:
            return image[..., None], None
        return np.moveaxis(image, keep.index(axis), -1), None

    def check(self, i: int) -> tuple[str | None, tuple[int, int]]:
        """The size from the file's header; every header was read when the source opened."""
        shape, axes, _ = _tiff_layout(self.files[self._index(i)])
        return None, (shape[axes.index("Y")], shape[axes.index("X")])

    def name(self, i: int) -> str:
        return self.files[self._index(i)].name
