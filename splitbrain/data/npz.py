"""Numpy archives: the one reader of .npz files, and the source of decoded images in one.

Image and channel data (``images``, ``labels``, ``classes``) are read by ``NpzSource``; RGB-D
frames (``rgb``, ``depth``, ...) by ``splitbrain.rgbd.sources.RGBDNpz``; both through
``read_npz``, which never unpickles (a stranger's archive cannot execute code).
"""

from __future__ import annotations

import zipfile
from collections.abc import Iterable
from pathlib import Path

import numpy as np

from ..errors import literal
from .base import ArraySource
from .errors import DatasetError


def read_npz(
    path: str | Path, keys: Iterable[str] | None = None, error: type[Exception] = DatasetError
) -> dict[str, np.ndarray]:
    """The arrays of an .npz file (only ``keys`` when given, those present), or ``error``
    naming the file and the problem."""
    try:
        with np.load(path, allow_pickle=False) as archive:
            wanted = archive.files if keys is None else [k for k in keys if k in archive.files]
            return {k: archive[k] for k in wanted}
    except FileNotFoundError:
        raise error(f"npz:{path}: no such file") from None
    except (OSError, ValueError, zipfile.BadZipFile) as problem:
        raise error(f"npz:{path}: unreadable numpy archive ({problem})") from None


class NpzSource(ArraySource):
    """``images`` (N, H, W, C) or (N, H, W) uint8, optional ``labels`` (N,) int and ``classes``.

    As photographs (``rgb``, the default), C must be 3 or 1, and greyscale is replicated to
    RGB; as channel data, any C is kept. The archive is one split: ``split`` is recorded but
    selects nothing (pass the test archive as its own spec).
    """

    format = "npz"

    def __init__(self, path: str | Path, split: str = "train", rgb: bool = True) -> None:
        path = Path(path).expanduser().resolve()
        arrays = read_npz(path, ("images", "labels", "classes"))
        if "images" not in arrays:
            raise DatasetError(f"npz:{path}: no 'images' array")
        images = arrays["images"]
        if images.ndim == 3:
            images = images[..., None]
        if images.dtype != np.uint8 or images.ndim != 4:
            raise DatasetError(
                f"npz:{path}: 'images' must be uint8 (N, H, W, C) or (N, H, W), got "
                f"{images.dtype} {images.shape}; scale other types to 0..255 first"
            )
        if rgb and images.shape[-1] not in (1, 3):
            raise DatasetError(
                f"npz:{literal(path)}: {images.shape[-1]} channels; photographs need 3 (RGB) or "
                "1 (greyscale); train on other channel counts with {split} channels:...",
                ("split",),
            )
        if rgb and images.shape[-1] == 1:
            images = np.repeat(images, 3, axis=-1)
        labels = arrays.get("labels")
        if labels is not None and (labels.shape != (len(images),) or labels.dtype.kind not in "iu"):
            raise DatasetError(
                f"npz:{path}: 'labels' must be ({len(images)},) int, got {labels.shape} "
                f"{labels.dtype}"
            )
        classes = [str(c) for c in arrays["classes"]] if "classes" in arrays else None
        if labels is not None and classes is None:
            classes = [str(c) for c in range(int(labels.max()) + 1)] if len(labels) else []
        super().__init__(str(path), split, images, labels, classes)
