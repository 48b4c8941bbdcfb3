"""Prepared shards: a dataset decoded, resized and re-encoded once, so that training decodes
small JPEGs out of a few large files instead of large JPEGs out of many small ones.

``prepare`` writes one split into a folder:

    shard-000000.tar ...   webdataset shards: KEY.jpg (shorter side at most ``side``) + KEY.cls
    index.npz              each image's shard, byte offset, size and label
    prepared.json          what was prepared from what (written last: its presence means done)

The tars are plain webdataset shards, so other tools can stream them; ``ShardSource`` reads
them by random access (one ``pread`` at the indexed offset), so the sample stream that drives
every source (a pure function of seed and step) drives this one unchanged, and a killed run
resumes exactly (docs/PERFORMANCE.md).
"""

from __future__ import annotations

import io
import json
import logging
import multiprocessing
import os
import tarfile
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np
from PIL import Image

from ..atomic import atomic_write
from ..jsontext import json_text
from ..progress import track
from .badlog import BadImageLog
from .base import ImageSource
from .decode import decode_file, probe_file
from .errors import BadImage, DatasetError
from .transforms import as_chw, resize_frame, resized_shape

logger = logging.getLogger("splitbrain.data")

MARKER = "prepared.json"
INDEX = "index.npz"
SHARD_PATTERN = "shard-%06d.tar"

_worker_job: tuple[ImageSource, int, int] | None = None  # (source, side, quality) per worker


def encode_item(source: ImageSource, i: int, side: int, quality: int) -> tuple[bytes, str | None]:
    """Item ``i`` as JPEG bytes, its shorter side shrunk to ``side`` (never enlarged), and the
    conversion it needed; raises BadImage."""
    image, _, note = source.load_with_note(i, side)
    height, width = image.shape[:2]
    if min(height, width) > side:
        frame = resize_frame(as_chw(image), resized_shape(height, width, side, side))
        image = frame.permute(1, 2, 0).numpy()
    buffer = io.BytesIO()
    Image.fromarray(image).save(buffer, format="JPEG", quality=quality)
    return buffer.getvalue(), note


def _encode(i: int) -> tuple[int, bytes | None, str | None, str]:
    """(i, JPEG bytes or None, conversion or skip reason, detail) in a worker process."""
    source, side, quality = _worker_job
    try:
        data, note = encode_item(source, i, side, quality)
    except BadImage as bad:
        return i, None, bad.reason, bad.detail
    return i, data, note, ""


def _init_worker(job: tuple[ImageSource, int, int]) -> None:
    global _worker_job
    _worker_job = job


def _encoded(source: ImageSource, side: int, quality: int, workers: int) -> Iterator[tuple]:
    """Every item's ``_encode`` result, in index order, from ``workers`` processes."""
    job = (source, side, quality)
    if workers <= 1:
        _init_worker(job)
        yield from map(_encode, range(len(source)))
        return
    with multiprocessing.get_context().Pool(workers, _init_worker, (job,)) as pool:
        yield from pool.imap(_encode, range(len(source)), chunksize=64)


def _index_shards(folder: Path, shards: list[str]) -> dict[str, np.ndarray]:
    """Where each KEY.jpg's bytes lie: shard number, offset and size, in key order."""
    keys, shard_of, offsets, sizes = [], [], [], []
    for number, name in enumerate(shards):
        with tarfile.open(folder / name) as tar:
            for member in tar:
                if member.name.endswith(".jpg"):
                    keys.append(int(member.name[: -len(".jpg")]))
                    shard_of.append(number)
                    offsets.append(member.offset_data)
                    sizes.append(member.size)
    order = np.argsort(keys, kind="stable")
    return {
        "key": np.asarray(keys, dtype=np.int64)[order],
        "shard": np.asarray(shard_of, dtype=np.int32)[order],
        "offset": np.asarray(offsets, dtype=np.int64)[order],
        "size": np.asarray(sizes, dtype=np.int64)[order],
    }


def _save_npz(path: str, arrays: dict[str, np.ndarray]) -> None:
    with open(path, "wb") as file:  # a file object: np.savez would add ".npz" to a name
        np.savez(file, **arrays)


def prepare(
    source: ImageSource,
    out: str | os.PathLike,
    side: int = 256,
    quality: int = 95,
    shard_images: int = 4096,
    workers: int | None = None,
    progress: bool = True,
) -> dict:
    """Write ``source`` into ``out`` as shards of JPEGs whose shorter side is at most ``side``.

    Bad items are skipped and counted (the summary is in the returned and written metadata).
    Keys are the source's indices, so a prepared item can be traced to its original. A run
    that is stopped leaves no ``prepared.json`` and is redone from the start.
    """
    import webdataset

    if source.num_channels != 3:
        raise DatasetError(f"{source.spec}: prepare writes RGB JPEGs; the source has "
                           f"{source.num_channels} channels")  # fmt: skip
    folder = Path(out)
    folder.mkdir(parents=True, exist_ok=True)
    (folder / MARKER).unlink(missing_ok=True)
    for old in folder.glob("shard-*.tar"):
        old.unlink()
    if workers is None:
        workers = os.cpu_count() or 1
    log = BadImageLog()
    log.bind(source)
    labels = []
    start = time.perf_counter()
    pattern = str(folder / SHARD_PATTERN)
    with webdataset.ShardWriter(pattern, maxcount=shard_images, verbose=0) as sink:
        results = _encoded(source, side, quality, workers)
        bar = track(results, total=len(source), desc="preparing", unit="img", enabled=progress)
        for i, data, note, detail in bar:
            if data is None:
                log.record(i, note, source.name(i), detail)
                continue
            log.record(i, note)
            sink.write({"__key__": f"{i:09d}", "jpg": data, "cls": source.label(i)})
            labels.append(source.label(i))
    seconds = time.perf_counter() - start
    shards = sorted(path.name for path in folder.glob("shard-*.tar"))
    index = _index_shards(folder, shards)
    index["label"] = np.asarray(labels, dtype=np.int64)
    atomic_write(folder / INDEX, lambda tmp: _save_npz(tmp, index))
    meta = {
        "format": "splitbrain-shards",
        "version": 1,
        "source": source.spec,
        "split": source.split,
        "side": side,
        "quality": quality,
        "images": int(len(index["key"])),
        "skipped": log.skipped,
        "classes": source.classes,
        "shards": shards,
        "bytes": sum((folder / name).stat().st_size for name in shards),
        "seconds": round(seconds, 1),
    }
    atomic_write(folder / MARKER, lambda tmp: Path(tmp).write_text(json_text(meta, indent=1)))
    logger.info("%s: %s", source.spec, log.summary())
    return meta


def prepared_folder(path: str | os.PathLike, split: str) -> Path | None:
    """The folder of ``split`` prepared under ``path`` (``path/split`` or ``path`` itself)."""
    root = Path(path).expanduser()
    for folder in (root / split, root):
        if (folder / MARKER).is_file():
            return folder
    return None


class ShardSource(ImageSource):
    """A prepared split (``shards:OUT``): JPEGs read by offset out of webdataset shards."""

    format = "shards"
    decodes_files = True

    def __init__(self, path: str | os.PathLike, split: str = "train") -> None:
        folder = prepared_folder(path, split)
        if folder is None:
            raise DatasetError(
                f"shards:{path}: no {MARKER} in it or in {split}/ (write it with "
                f"`splitbrain prepare DATA {path}`; a stopped prepare leaves none)"
            )
        meta = json.loads((folder / MARKER).read_text())
        with np.load(folder / INDEX, allow_pickle=False) as index:
            self.keys, self.shard = index["key"], index["shard"]
            self.offset, self.size = index["offset"], index["size"]
            labels = index["label"]
        self.folder = folder
        self.files = [str(folder / name) for name in meta["shards"]]
        self.meta = meta
        classes = meta["classes"]
        labeled = classes is not None and bool((labels >= 0).any())
        super().__init__(
            str(Path(path).expanduser()), meta["split"], len(self.keys),
            labels if labeled else None, classes if labeled else None,
        )  # fmt: skip
        self._fds: dict[int, int] = {}
        self._pid = os.getpid()

    def __getstate__(self) -> dict:
        return {**self.__dict__, "_fds": {}}  # descriptors stay in the process that opened them

    def name(self, i: int) -> str:
        i = self._index(i)
        return f"{self.files[self.shard[i]]}:{self.keys[i]:09d}.jpg"

    def _bytes(self, i: int) -> bytes:
        if self._pid != os.getpid():  # a forked worker: open its own descriptors
            self._fds, self._pid = {}, os.getpid()
        number = int(self.shard[i])
        try:
            if number not in self._fds:
                self._fds[number] = os.open(self.files[number], os.O_RDONLY)
            data = os.pread(self._fds[number], int(self.size[i]), int(self.offset[i]))
        except OSError as error:
            raise BadImage(self.name(i), "unreadable file", str(error)) from None
        if len(data) < self.size[i]:
            raise BadImage(self.name(i), "truncated", f"{len(data)} of {self.size[i]} bytes")
        return data

    def _read(self, i: int, min_side: int | None = None) -> tuple[np.ndarray, str | None]:
        return decode_file(self.name(i), min_side, self._bytes(i))

    def check(self, i: int) -> tuple[str | None, tuple[int, int]]:
        i = self._index(i)
        return probe_file(self.name(i), self._bytes(i))

    def __del__(self) -> None:
        if getattr(self, "_pid", None) == os.getpid():
            for fd in self._fds.values():
                os.close(fd)
