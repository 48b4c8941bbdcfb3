"""CIFAR-10 and CIFAR-100 in the official python-pickle layout, from a directory or the .tar.gz.

Security: pickle can execute code. Only the official archives are meant to be read here (the
ones ``download`` verifies by MD5), and the unpickler below additionally refuses every global
except numpy's array reconstruction, which is all the official batches contain.
"""

from __future__ import annotations

import io
import pickle
import tarfile
from pathlib import Path

import numpy as np

from .base import ArraySource
from .errors import DatasetError

#: format -> (folder inside the archive, {split: batch files}, meta file, label key, names key)
LAYOUTS = {
    "cifar10": (
        "cifar-10-batches-py",
        {"train": [f"data_batch_{k}" for k in range(1, 6)], "test": ["test_batch"]},
        "batches.meta",
        b"labels",
        b"label_names",
    ),
    "cifar100": (
        "cifar-100-python",
        {"train": ["train"], "test": ["test"]},
        "meta",
        b"fine_labels",
        b"fine_label_names",
    ),
}

_ALLOWED_GLOBALS = {
    ("numpy.core.multiarray", "_reconstruct"),
    ("numpy._core.multiarray", "_reconstruct"),
    ("numpy", "ndarray"),
    ("numpy", "dtype"),
    ("_codecs", "encode"),  # how Python 3 writes bytes in protocol-2 pickles of re-saved copies
}


class _ArraysOnlyUnpickler(pickle.Unpickler):
    """An unpickler for the official batches: plain containers and numpy arrays, nothing else."""

    def find_class(self, module: str, name: str):
        if (module, name) not in _ALLOWED_GLOBALS:
            raise pickle.UnpicklingError(f"refusing to load {module}.{name} from a CIFAR batch")
        return super().find_class(module, name)


def _unpickle(data: bytes, where: str) -> dict:
    try:
        return _ArraysOnlyUnpickler(io.BytesIO(data), encoding="bytes").load()
    except Exception as error:  # a cut-off or foreign file: say which one
        raise DatasetError(f"{where}: not an official CIFAR batch ({error})") from None


def _read_members(path: Path, folder: str, names: list[str]) -> dict[str, bytes]:
    """The named files of the CIFAR folder, from a directory holding it or from the tarball."""
    if path.is_dir():
        base = path / folder if (path / folder).is_dir() else path
        missing = [n for n in names if not (base / n).is_file()]
        if missing:
            raise DatasetError(f"{base}: missing {', '.join(missing)} (expected {folder}/)")
        return {n: (base / n).read_bytes() for n in names}
    found: dict[str, bytes] = {}
    try:
        with tarfile.open(path, "r:*") as archive:
            for member in archive:
                parts = member.name.split("/")
                if member.isfile() and parts[-2:-1] == [folder] and parts[-1] in names:
                    found[parts[-1]] = archive.extractfile(member).read()
    except (tarfile.TarError, OSError, EOFError) as error:
        raise DatasetError(f"{path}: unreadable archive ({error})") from None
    missing = [n for n in names if n not in found]
    if missing:
        raise DatasetError(f"{path}: archive lacks {folder}/{', '.join(missing)}")
    return found


class CifarSource(ArraySource):
    """All images of one split in memory (50,000 x 32 x 32 x 3 bytes = 150 MB for train)."""

    def __init__(self, dataset: str, path: str | Path, split: str = "train") -> None:
        self.format = dataset
        folder, splits, meta_name, label_key, names_key = LAYOUTS[dataset]
        split = "test" if split == "val" else split  # the only held-out split
        if split not in splits:
            raise DatasetError(f"{dataset}: no split {split!r}; choose from {sorted(splits)}")
        path = Path(path).expanduser().resolve()
        batches = splits[split]
        files = _read_members(path, folder, [*batches, meta_name])
        meta = _unpickle(files[meta_name], f"{path}:{meta_name}")
        classes = [name.decode() for name in meta[names_key]]
        images, labels = [], []
        self.batches: list[tuple[str, int]] = []  # (batch file, first item) for item names
        for name in batches:
            batch = _unpickle(files[name], f"{path}:{name}")
            data = np.asarray(batch[b"data"], dtype=np.uint8)
            if data.ndim != 2 or data.shape[1] != 3 * 32 * 32:
                raise DatasetError(f"{path}:{name}: data of shape {data.shape}, not (N, 3072)")
            self.batches.append((name, sum(len(x) for x in images)))
            # each row holds the R, G and B planes of one image, each plane row-major
            images.append(data.reshape(-1, 3, 32, 32).transpose(0, 2, 3, 1))
            labels.append(np.asarray(batch[label_key], dtype=np.int64))
        super().__init__(
            str(path),
            split,
            np.ascontiguousarray(np.concatenate(images)),
            np.concatenate(labels),
            classes,
        )

    def name(self, i: int) -> str:
        i = self._index(i)
        batch, start = next((b, s) for b, s in reversed(self.batches) if s <= i)
        return f"{self.format}:{batch}[{i - start}]"
