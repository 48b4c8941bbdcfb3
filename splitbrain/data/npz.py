"""A numpy archive of decoded images: quick runs, exact pixels, data prepared elsewhere."""

from __future__ import annotations

import zipfile
from pathlib import Path

import numpy as np

from .base import ArraySource
from .errors import DatasetError


class NpzSource(ArraySource):
    """``images`` (N, H, W, 3) or (N, H, W[, 1]) uint8, optional ``labels`` (N,) and ``classes``.

    Greyscale arrays are replicated to RGB. The archive is one split: ``split`` is recorded but
    selects nothing (pass the test archive as its own spec).
    """

    format = "npz"

    def __init__(self, path: str | Path, split: str = "train") -> None:
        path = Path(path).expanduser().resolve()
        try:
            with np.load(path, allow_pickle=False) as archive:
                arrays = {k: archive[k] for k in ("images", "labels", "classes") if k in archive}
        except (OSError, ValueError, zipfile.BadZipFile) as error:
            raise DatasetError(f"npz:{path}: unreadable numpy archive ({error})") from None
        if "images" not in arrays:
            raise DatasetError(f"npz:{path}: no 'images' array")
        images = arrays["images"]
        if images.ndim == 3:
            images = images[..., None]
        if images.dtype != np.uint8 or images.ndim != 4 or images.shape[-1] not in (1, 3):
            raise DatasetError(
                f"npz:{path}: images must be uint8 (N, H, W, 3) or (N, H, W[, 1]), "
                f"got {images.dtype} {images.shape}"
            )
        if images.shape[-1] == 1:
            images = np.repeat(images, 3, axis=-1)
        labels = arrays.get("labels")
        if labels is not None and labels.shape != (len(images),):
            raise DatasetError(f"npz:{path}: {labels.shape} labels for {len(images)} images")
        classes = [str(c) for c in arrays["classes"]] if "classes" in arrays else None
        if labels is not None and classes is None:
            classes = [str(c) for c in range(int(labels.max()) + 1)] if len(labels) else []
        super().__init__(str(path), split, images, labels, classes)
