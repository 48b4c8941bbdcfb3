"""Features of every image of a data source, streamed to one file (``splitbrain extract``).

Batches go to one raw file per layer as they come, so memory does not grow with the dataset;
closing assembles them into a safetensors file (``.safetensors``) or a numpy archive (``.npz``)
by copying the raw bytes behind a header, and writes a CSV beside it that says which item
(index, label, file) each row is. Tensors: one per layer, (N, ...) float32; ``labels`` (N,)
int64, -1 where an item has none; ``index`` (N,) int64, the item's index in the source.
Unreadable items are skipped, named and counted (without a scan first: each file is decoded
once).
"""

from __future__ import annotations

import csv
import shutil
import struct
import tempfile
import time
import zipfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import DataLoader

from ..atomic import atomic_write
from ..data import EvalTransform, ImageDataset, ImageSource
from ..extract import extract_batches
from ..jsontext import json_text
from ..models import SplitBrain
from ..progress import track

SUFFIXES = (".safetensors", ".npz")
_DTYPES = {torch.float32: ("F32", "<f4"), torch.int64: ("I64", "<i8")}


class FeatureWriter:
    """Named (N, ...) tensors appended batch by batch; ``close`` writes the file."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        if self.path.suffix not in SUFFIXES:
            raise ValueError(f"{self.path}: write features to .safetensors or .npz")
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.folder = Path(tempfile.mkdtemp(prefix=f".{self.path.name}.", dir=self.path.parent))
        self.rows: dict[str, int] = {}
        self.shapes: dict[str, tuple[tuple[int, ...], torch.dtype]] = {}

    def write(self, tensors: dict[str, torch.Tensor]) -> None:
        for name, tensor in tensors.items():
            tensor = tensor.detach().cpu().contiguous()
            if tensor.dtype not in _DTYPES or tensor.dim() == 0:
                raise ValueError(
                    f"{name}: rows of float32 or int64 are written, got a {tensor.dtype} "
                    f"tensor of shape {tuple(tensor.shape)}"
                )
            shape = (tuple(tensor.shape[1:]), tensor.dtype)
            if self.shapes.setdefault(name, shape) != shape:
                raise ValueError(f"{name}: rows of shape {shape}, then {self.shapes[name]}")
            with open(self.folder / name, "ab") as raw:
                raw.write(tensor.numpy().tobytes())
            self.rows[name] = self.rows.get(name, 0) + len(tensor)

    def _shape(self, name: str) -> list[int]:
        return [self.rows[name], *self.shapes[name][0]]

    def _write_safetensors(self, tmp: str, metadata: dict[str, str]) -> None:
        header: dict = {"__metadata__": {str(k): str(v) for k, v in metadata.items()}}
        offset = 0
        for name in self.rows:
            size = (self.folder / name).stat().st_size
            dtype = _DTYPES[self.shapes[name][1]][0]
            header[name] = {
                "dtype": dtype,
                "shape": self._shape(name),
                "data_offsets": [offset, offset + size],
            }
            offset += size
        text = json_text(header, separators=(",", ":")).encode()
        text += b" " * (-len(text) % 8)  # the data starts 8-byte aligned
        with open(tmp, "wb") as out:
            out.write(struct.pack("<Q", len(text)) + text)
            for name in self.rows:
                with open(self.folder / name, "rb") as raw:
                    shutil.copyfileobj(raw, out)

    def _write_npz(self, tmp: str) -> None:
        with zipfile.ZipFile(tmp, "w", allowZip64=True) as archive:
            for name in self.rows:
                header = {
                    "descr": _DTYPES[self.shapes[name][1]][1],
                    "fortran_order": False,
                    "shape": tuple(self._shape(name)),
                }
                with archive.open(f"{name}.npy", "w", force_zip64=True) as entry:
                    np.lib.format.write_array_header_2_0(entry, header)
                    with open(self.folder / name, "rb") as raw:
                        shutil.copyfileobj(raw, entry)

    def close(self, metadata: dict[str, str] | None = None) -> Path:
        try:
            if self.path.suffix == ".npz":
                atomic_write(self.path, self._write_npz)
            else:
                atomic_write(self.path, lambda tmp: self._write_safetensors(tmp, metadata or {}))
        finally:
            shutil.rmtree(self.folder, ignore_errors=True)
        return self.path


@dataclass
class ExtractOutcome:
    path: Path
    csv: Path
    rows: int
    items: int
    skipped: str
    seconds: float


def extract_to_file(
    model: SplitBrain,
    source: ImageSource,
    layers: list[str],
    out: str | Path,
    pool: str = "avg",
    batch_size: int = 64,
    workers: int = 2,
    crop: int | None = None,
    resize: int | None = None,
    progress: bool = True,
    precision: str = "32-true",
) -> ExtractOutcome:
    """Pooled features of every usable item of ``source`` (centre crops at the model's
    geometry unless ``crop``/``resize`` say otherwise) into ``out``, with the CSV beside it."""
    start = time.perf_counter()
    resize, crop = model.geometry(crop, resize)
    space = model.split.space
    transform = EvalTransform(resize, crop)
    if space.data == "rgbd":  # HHA once per frame, then centre crops
        from ..rgbd import RGBDDataset

        dataset = RGBDDataset(source, transform, progress=progress)
        summary = dataset.report
    else:
        # No scan first: every file is decoded once, as it is extracted; an unreadable one is
        # skipped there, logged by name and counted in the log the workers share.
        dataset = ImageDataset(source, transform, channels=space.raw_channels)
        summary = dataset.log.summary
    batches = DataLoader(
        dataset.with_index(), batch_size, num_workers=workers, collate_fn=ImageDataset.collate
    )
    writer = FeatureWriter(out)
    labels = source.labels
    table = Path(out).with_suffix(".csv")
    rows = []
    try:
        bar = track(total=len(dataset), desc="extracting", unit="img", enabled=progress)
        with bar:
            for features, index in extract_batches(model, batches, layers, pool, precision):
                label = (
                    torch.full_like(index, -1)
                    if labels is None
                    else torch.from_numpy(labels[index.numpy()])
                )
                writer.write({**features, "labels": label, "index": index})
                rows += index.tolist()
                bar.update(len(index))
        if not rows:
            raise ValueError(f"{source.spec}: no readable images to extract features from")
        metadata = {
            "layers": ",".join(layers),
            "pool": pool,
            "crop": str(crop),
            "resize": str(resize),
            "source": source.spec,
        }
        path = writer.close(metadata)
    except BaseException:
        shutil.rmtree(writer.folder, ignore_errors=True)
        raise

    def write_csv(tmp: str) -> None:
        with open(tmp, "w", newline="") as f:
            out_csv = csv.writer(f)
            out_csv.writerow(["row", "index", "label", "name"])
            for row, i in enumerate(rows):
                out_csv.writerow([row, i, source.label(i), source.name(i)])

    atomic_write(table, write_csv)
    return ExtractOutcome(
        path, table, len(rows), len(source), summary(), time.perf_counter() - start
    )
