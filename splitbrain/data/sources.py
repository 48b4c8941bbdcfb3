"""Open data specs: ``open_source`` for photographs (``FORMAT:PATH``, FORMAT detected if
omitted), ``open_channels`` for stacks of any number of channels (npz, TIFF)."""

from __future__ import annotations

import os
import re
import tarfile
from pathlib import Path

from ..errors import literal
from .base import ImageSource
from .builtin import DEFAULT_COUNT, SkimageSource
from .cifar import LAYOUTS, CifarSource
from .download import ARCHIVES, default_cache_dir, extract_stl10, fetch
from .errors import DatasetError
from .folder import IMAGE_EXTENSIONS, FolderSource
from .npz import NpzSource
from .shards import ShardSource, prepared_folder
from .stl10 import Stl10Source
from .tiff import TIFF_EXTENSIONS, TiffSource
from .voc import VOCClassification

FORMATS = ("folder", "cifar10", "cifar100", "stl10", "npz", "skimage", "shards", "voc")
_SPEC = re.compile(rf"^({'|'.join(FORMATS)}):(.*)$")
#: Formats read from a local path alone (no archive, no download), by their source class.
_PATH_READERS = {
    "folder": FolderSource,
    "npz": NpzSource,
    "shards": ShardSource,
    "voc": VOCClassification,
}
#: Folder names inside a directory or tarball that identify an official layout.
_MARKERS = {
    "cifar-10-batches-py": "cifar10",
    "cifar-100-python": "cifar100",
    "stl10_binary": "stl10",
}
#: Files that together identify a directory as an official layout's folder itself.
_MARKER_FILES = {
    "cifar10": ("batches.meta", "data_batch_1"),
    "cifar100": ("meta", "train", "test"),
    "stl10": ("test_X.bin", "test_y.bin"),
}


def _is_tarball(path: Path) -> bool:
    return path.name.endswith((".tar.gz", ".tgz", ".tar"))


def detect_format(path: Path) -> str:
    """The format of ``path`` from its layout: official folders and tarballs, npz, else folder."""
    if path.is_file():
        if path.suffix == ".npz":
            return "npz"
        if path.suffix == ".safetensors":
            raise DatasetError(f"{path} is a weights file, not data; pass it as --weights")
        if path.suffix.lower() in IMAGE_EXTENSIONS:
            raise DatasetError(
                f"{path} is a single image; data is a folder of images: put the images in a "
                "folder and pass the folder"
            )
        if _is_tarball(path):
            try:
                with tarfile.open(path, "r:*") as tar:
                    first = tar.next()
            except (tarfile.TarError, OSError, EOFError) as error:
                raise DatasetError(f"{path}: unreadable archive ({error})") from None
            top = first.name.split("/")[0] if first is not None else ""
            if top in _MARKERS:
                return _MARKERS[top]
            raise DatasetError(f"{path}: not a CIFAR or STL-10 archive (starts with {top!r})")
        raise DatasetError(f"{path}: cannot tell the dataset format; write it as FORMAT:{path}")
    if not path.is_dir():
        raise DatasetError(f"{path}: no such file or directory")
    if prepared_folder(path, "train") or prepared_folder(path, "test"):
        return "shards"
    for marker, fmt in _MARKERS.items():
        if (path / marker).is_dir():
            return fmt
    for fmt, files in _MARKER_FILES.items():
        if all((path / name).is_file() for name in files):
            return fmt
    return "folder"


def _locate(fmt: str, path: str, download: bool, cache_dir: str | os.PathLike | None) -> Path:
    """The local file or folder to read for an official dataset, downloading it if asked.

    A PATH that does not exist yet is, with ``download``, the folder to download into.
    """
    if path:
        local = Path(path).expanduser()
        if local.exists():
            return local
        if not download:
            raise DatasetError(
                f"{fmt}:{literal(path)}: no such file or directory (or set {{download}} to "
                f"fetch {ARCHIVES[fmt].url} into it)",
                ("download",),
            )
        cache_dir = local
    cache = Path(cache_dir).expanduser() if cache_dir else default_cache_dir()
    archive = cache / ARCHIVES[fmt].filename
    # CIFAR reads faster from its folder; STL-10's folder may be a half-done extraction, which
    # extract_stl10 redoes from the archive.
    if fmt in LAYOUTS:
        candidates = [cache / LAYOUTS[fmt][0], archive]
    else:
        candidates = [archive, cache / "stl10_binary"]
    for candidate in candidates:
        if candidate.exists():
            return candidate
    if not download:
        raise DatasetError(
            f"{fmt}: not found in {cache}; pass download=True (--download) to fetch "
            f"{ARCHIVES[fmt].url}, "
            f"or give its path as {fmt}:/path/to/{ARCHIVES[fmt].filename}"
        )
    return fetch(fmt, cache)


def open_source(
    spec: str,
    split: str = "train",
    download: bool = False,
    cache_dir: str | os.PathLike | None = None,
) -> ImageSource:
    """Open ``spec`` (``FORMAT:PATH`` or a bare PATH whose format is detected) at ``split``.

    ``cifar10:``, ``cifar100:`` and ``stl10:`` with an empty PATH read the archive in
    ``cache_dir`` (default ``~/.cache/splitbrain``), fetching it first when ``download`` is set.
    ``skimage:`` or ``skimage:N`` is the built-in offline dataset of N photo crops.
    ``voc:DIR`` is a VOCdevkit year folder's classification images (``data.voc``).
    """
    match = _SPEC.match(spec)
    if spec == "skimage":
        fmt, path = "skimage", ""
    elif match:
        fmt, path = match.groups()
    else:
        fmt, path = None, spec
    if fmt == "skimage":
        try:
            count = int(path) if path else DEFAULT_COUNT
        except ValueError:
            raise DatasetError(f"skimage:{path}: expected skimage:N with N a number") from None
        return SkimageSource(count, split)
    if fmt is None:
        prefix, sep, _ = spec.partition(":")
        if sep and len(prefix) > 1 and prefix.isalnum() and not Path(spec).expanduser().exists():
            raise DatasetError(
                f"{spec}: unknown format {prefix!r}; known: {', '.join(FORMATS)} "
                "(or a path whose format is detected)"
            )
        fmt = detect_format(Path(path).expanduser())
    if fmt in _PATH_READERS:
        if not path:
            raise DatasetError(f"{fmt}: needs a path, as {fmt}:/path/to/data")
        return _PATH_READERS[fmt](path, split)
    local = _locate(fmt, path, download, cache_dir)
    if fmt == "stl10":
        if local.is_file() and _is_tarball(local):
            local = extract_stl10(local, cache_dir)
        return Stl10Source(local, split)
    return CifarSource(fmt, local, split)


def open_channels(spec: str | os.PathLike) -> ImageSource:
    """Channel data of any channel count: ``npz:FILE``, ``tiff:FILE_OR_DIR``, or a bare path
    recognised by its extension (.npz, .tif, .tiff) or as a folder of TIFF files."""
    text = os.fspath(spec)
    fmt, sep, rest = text.partition(":")
    if sep and fmt == "npz":
        return NpzSource(rest, rgb=False)
    if sep and fmt in ("tif", "tiff"):
        return TiffSource(rest)
    path = Path(text)
    if path.suffix.lower() == ".npz":
        return NpzSource(path, rgb=False)
    if path.is_dir() or path.suffix.lower() in TIFF_EXTENSIONS:
        return TiffSource(path)
    raise DatasetError(f"{text}: cannot tell the channel data format; use npz:FILE or tiff:PATH")
