"""A directory of image files, optionally with class subfolders and train/test subfolders."""

from __future__ import annotations

import logging
import os
from pathlib import Path

import numpy as np

from .base import UNLABELED, ImageSource
from .decode import decode_file, probe_file
from .errors import DatasetError

log = logging.getLogger("splitbrain.data")

#: Still-image formats people keep photographs in, as Pillow reads them (a multi-frame GIF,
#: APNG or MPO gives its first frame). HEIC needs the pillow-heif plugin and is not listed.
IMAGE_EXTENSIONS = frozenset(
    {
        ".jpg", ".jpeg", ".jpe", ".jfif", ".mpo", ".png", ".apng", ".gif", ".bmp", ".dib",
        ".webp", ".avif", ".tif", ".tiff", ".jp2", ".j2k", ".jpx", ".jpf", ".ppm", ".pgm",
        ".pbm", ".pnm", ".tga",
    }
)  # fmt: skip
#: Subfolder names that make a folder a dataset with splits; "test" and "val" stand in for
#: each other when only one of them exists (Imagenette ships train/ and val/).
SPLIT_DIRS = ("train", "test", "val")


def is_image(name: str) -> bool:
    return not name.startswith(".") and os.path.splitext(name)[1].lower() in IMAGE_EXTENSIONS


def images_under(directory: str) -> list[str]:
    """Image files anywhere below ``directory``, sorted by path; hidden files and dirs skipped."""
    found = []
    for root, dirs, files in os.walk(directory, followlinks=True):
        dirs[:] = [d for d in dirs if not d.startswith(".")]
        found.extend(os.path.join(root, f) for f in files if is_image(f))
    return sorted(found)


def split_dirs(root: Path) -> dict[str, Path]:
    """The split subfolders of ``root`` ({} when it is a plain image folder)."""
    present = {name: root / name for name in SPLIT_DIRS if (root / name).is_dir()}
    if "train" not in present or len(present) < 2:
        return {}
    if "test" not in present:
        present["test"] = present["val"]
    if "val" not in present:
        present["val"] = present["test"]
    return present


class FolderSource(ImageSource):
    """Image files below a directory, decoded with Pillow on each ``load``.

    Order: images directly in the directory first (label -1), then each first-level subfolder
    (a class, sorted by name) with its images found recursively and sorted by path. That is
    the torchvision ``ImageFolder`` order, so class indices agree with it.
    """

    format = "folder"
    decodes_files = True

    def __init__(self, path: str | os.PathLike, split: str = "train") -> None:
        root = Path(path).expanduser().resolve()
        if not root.is_dir():
            raise DatasetError(f"folder:{root}: no such directory")
        splits = split_dirs(root)
        if splits:
            if split not in splits:
                raise DatasetError(f"folder:{root} has splits {sorted(splits)}; no split {split!r}")
            directory = splits[split]
        else:
            if split != "train":
                log.warning("folder:%s has no split subfolders; using all of it as %r", root, split)
            directory = root
        with os.scandir(directory) as entries:
            entries = sorted(entries, key=lambda e: e.name)
            top = [e.path for e in entries if e.is_file() and is_image(e.name)]
            classes = [e.name for e in entries if e.is_dir() and not e.name.startswith(".")]
        paths, labels = list(top), [UNLABELED] * len(top)
        for index, name in enumerate(classes):
            found = images_under(os.path.join(directory, name))
            if not found:
                log.warning("folder:%s: class folder %r holds no images", directory, name)
            paths.extend(found)
            labels.extend([index] * len(found))
        if not paths:
            raise DatasetError(
                f"folder:{directory}: no image files ({', '.join(sorted(IMAGE_EXTENSIONS))})"
            )
        self.paths = paths
        labeled = bool(classes) and any(label != UNLABELED for label in labels)
        super().__init__(
            str(root),
            split if splits else "all",
            len(paths),
            np.array(labels, dtype=np.int64) if labeled else None,
            classes if labeled else None,
        )
        self.directory = str(directory)

    def name(self, i: int) -> str:
        return self.paths[self._index(i)]

    def _read(self, i: int, min_side: int | None = None) -> tuple[np.ndarray, str | None]:
        return decode_file(self.paths[i], min_side)

    def check(self, i: int) -> tuple[str | None, tuple[int, int]]:
        return probe_file(self.paths[self._index(i)])
