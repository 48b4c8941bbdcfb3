"""Generic C-channel data: the ``channels:`` split grammar, npz/TIFF sources and their dataset.

Nothing in the split-brain method is specific to colour (SPEC section 1): any channel split of
any multi-channel signal works. This module lets the project train on such signals, e.g.
13-band satellite tiles, without writing code (docs/CHANNELS.md):

    split = parse_channel_split("channels:0-2/3-12:cl,reg:bins=16:n=13")
    source = open_channels("tiff:/data/tiles")            # or npz:FILE.npz
    dataset = ChannelDataset(source, resize=64, crop=64, num_channels=split.space.raw_channels)

Values are uint8 and become ``x / 255`` in [0, 1] on the training device (the ``identity``
channel space), so the split's ``value_range`` (0, 1) covers every channel.
"""

from __future__ import annotations

import os
import zipfile
from abc import ABC, abstractmethod
from dataclasses import replace
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor
from torch.utils.data import Dataset

from ..splits import LOSSES, Split, channel_split
from .base import UNLABELED
from .dataset import ImageDataset
from .errors import DatasetError

__all__ = [
    "ChannelDataset",
    "ChannelNpz",
    "ChannelSource",
    "ChannelTiff",
    "crop_frame",
    "open_channels",
    "parse_channel_split",
    "resize_frame",
]

_TIFF_EXTS = (".tif", ".tiff")
_DEFAULT_BINS = 32
_DEFAULT_RANGE = (0.0, 1.0)


# --- the split grammar --------------------------------------------------------------------


def _indices(text: str, spec: str) -> tuple[int, ...]:
    """``0,1,2`` or ``0-2,5`` -> (0, 1, 2[, 5]); ranges are inclusive."""
    out: list[int] = []
    for part in text.split(","):
        low, dash, high = part.partition("-")
        try:
            first, last = int(low), int(high if dash else low)
        except ValueError:
            raise ValueError(f"{spec}: {part!r} is not a channel index or range A-B") from None
        if first < 0 or last < first:
            raise ValueError(f"{spec}: bad channel range {part!r}")
        out.extend(range(first, last + 1))
    if len(set(out)) != len(out):
        raise ValueError(f"{spec}: a channel is listed twice in {text!r}")
    return tuple(out)


def parse_channel_split(spec: str) -> Split:
    """A generic split from ``channels:A/B[:LOSS][:bins=K][:range=LOW,HIGH][:n=C]``.

    ``A`` and ``B`` are the two halves' channels (indices and inclusive ranges, ``0,1,2`` or
    ``0-2``); half 1 reads A and predicts B, half 2 the reverse. ``LOSS`` is ``reg``, ``cl``,
    or one per half (``cl,reg``: half 1's predictions classified, half 2's regressed); default
    ``reg``. ``bins`` and ``range`` set the uniform bins of ``cl`` targets (default 32 on
    [0, 1], the range of uint8 data / 255). ``n`` is the data's channel count; without it the
    count is inferred as the largest index + 1, so data with channels that neither half uses
    must say ``n=``. The returned split's name is the canonical spec, which parses back to it.
    """
    prefix, _, body = spec.partition(":")
    fields = body.split(":")
    if prefix != "channels" or "/" not in fields[0]:
        raise ValueError(f"{spec}: expected channels:A/B[:LOSS][:bins=K][:range=LOW,HIGH][:n=C]")
    first_text, _, second_text = fields[0].partition("/")
    first, second = _indices(first_text, spec), _indices(second_text, spec)
    shared = sorted(set(first) & set(second))
    if shared:
        raise ValueError(
            f"{spec}: channels {shared} are in both halves (a half would see its target)"
        )
    loss, bins, value_range, count = ("reg", "reg"), _DEFAULT_BINS, _DEFAULT_RANGE, None
    for field in fields[1:]:
        key, eq, value = field.partition("=")
        try:
            if not eq:
                kinds = tuple(field.split(","))
                if not set(kinds) <= set(LOSSES) or len(kinds) not in (1, 2):
                    raise ValueError
                loss = (kinds * 2)[:2]
            elif key == "bins":
                bins = int(value)
                if bins < 2:
                    raise ValueError
            elif key == "range":
                low, high = (float(v) for v in value.split(","))
                if not low < high:
                    raise ValueError
                value_range = (low, high)
            elif key == "n":
                count = int(value)
            else:
                raise ValueError
        except ValueError:
            raise ValueError(
                f"{spec}: cannot read {field!r}; use reg, cl, cl,reg, bins=K (K >= 2), "
                "range=LOW,HIGH (LOW < HIGH) or n=C"
            ) from None
    largest = max(first + second) + 1
    if count is not None and count < largest:
        raise ValueError(f"{spec}: n={count} but channel {largest - 1} is used")
    count = count or largest
    name = f"channels:{first_text}/{second_text}:{loss[0]},{loss[1]}"
    if "cl" in loss:
        name += f":bins={bins}:range={value_range[0]:g},{value_range[1]:g}"
    split = channel_split(count, first, second, loss, bins, value_range)
    return replace(split, name=f"{name}:n={count}")


# --- sources ------------------------------------------------------------------------------


class ChannelSource(ABC):
    """An indexed list of (H, W, C) uint8 arrays with the same C, and optional int labels."""

    path: Path
    num_channels: int
    labels: np.ndarray | None = None

    @abstractmethod
    def __len__(self) -> int: ...

    @abstractmethod
    def __getitem__(self, i: int) -> np.ndarray: ...

    def name(self, i: int) -> str:
        return f"{self.path.name}[{i}]"

    def label(self, i: int) -> int:
        return UNLABELED if self.labels is None else int(self.labels[i])

    def describe(self) -> str:
        labels = "no labels" if self.labels is None else f"{len(np.unique(self.labels))} labels"
        return (
            f"{type(self).__name__}({self.path}): {len(self)} images, "
            f"{self.num_channels} channels, {labels}"
        )


class ChannelNpz(ChannelSource):
    """``images`` (N, H, W, C) uint8 (or (N, H, W) for C = 1), optional ``labels`` (N,) int."""

    def __init__(self, path: os.PathLike | str) -> None:
        self.path = Path(path)
        try:
            with np.load(self.path, allow_pickle=False) as archive:
                arrays = {k: archive[k] for k in ("images", "labels") if k in archive}
        except (OSError, ValueError, zipfile.BadZipFile) as error:
            raise DatasetError(f"npz:{self.path}: unreadable numpy archive ({error})") from None
        if "images" not in arrays:
            raise DatasetError(f"npz:{self.path}: no 'images' array")
        images = arrays["images"]
        images = images[..., None] if images.ndim == 3 else images
        if images.dtype != np.uint8 or images.ndim != 4:
            raise DatasetError(
                f"npz:{self.path}: 'images' must be uint8 (N, H, W, C), got {images.dtype} "
                f"{images.shape}; scale other types to 0..255 first (docs/CHANNELS.md)"
            )
        labels = arrays.get("labels")
        if labels is not None and (labels.shape != (len(images),) or labels.dtype.kind not in "iu"):
            raise DatasetError(
                f"npz:{self.path}: 'labels' must be ({len(images)},) int, got {labels.shape} "
                f"{labels.dtype}"
            )
        self.images, self.labels, self.num_channels = images, labels, images.shape[-1]

    def __len__(self) -> int:
        return len(self.images)

    def __getitem__(self, i: int) -> np.ndarray:
        return self.images[i]


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


class ChannelTiff(ChannelSource):
    """TIFF files, one image each: (H, W), (H, W, C) samples, planar (C, H, W), or multi-page
    with one page per channel (how multispectral bands are often stored). ``path`` is one
    file (e.g. a large scene for random crops) or a folder whose ``.tif``/``.tiff`` files are
    the images, sorted by name. Read with ``tifffile``; uint8 only, one channel count."""

    def __init__(self, path: os.PathLike | str) -> None:
        self.path = Path(path)
        if self.path.is_dir():
            files = sorted(p for p in self.path.iterdir() if p.suffix.lower() in _TIFF_EXTS)
        else:
            files = [self.path] if self.path.is_file() else []
        if not files:
            raise DatasetError(f"tiff:{self.path}: no such TIFF file, or no .tif/.tiff in folder")
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
            raise DatasetError(f"tiff:{self.path}: files differ in channel count {sorted(counts)}")
        self.num_channels = counts.pop()

    def __len__(self) -> int:
        return len(self.files)

    def __getitem__(self, i: int) -> np.ndarray:
        file = self.files[i]
        with _tifffile().TiffFile(file) as tif:
            series = tif.series[0]
            image, axes = series.asarray(), series.axes
        axis = _channel_axis(file, image.shape, axes)
        keep = [k for k, a in enumerate(axes) if a in "YX" or k == axis]
        image = image.reshape([image.shape[k] for k in keep])  # drops the singleton axes
        if axis is None:
            return image[..., None]
        return np.moveaxis(image, keep.index(axis), -1)

    def name(self, i: int) -> str:
        return self.files[i].name


def open_channels(spec: str | os.PathLike) -> ChannelSource:
    """``npz:FILE``, ``tiff:FILE_OR_DIR``, or a bare path recognised by extension or folder."""
    text = os.fspath(spec)
    fmt, sep, rest = text.partition(":")
    if sep and fmt == "npz":
        return ChannelNpz(rest)
    if sep and fmt in ("tif", "tiff"):
        return ChannelTiff(rest)
    path = Path(text)
    if path.suffix.lower() == ".npz":
        return ChannelNpz(path)
    if path.is_dir() or path.suffix.lower() in _TIFF_EXTS:
        return ChannelTiff(path)
    raise DatasetError(f"{text}: cannot tell the channel data format; use npz:FILE or tiff:PATH")


# --- items --------------------------------------------------------------------------------


def resized_shape(height: int, width: int, resize: int | None, crop: int) -> tuple[int, int]:
    """Shorter side to ``resize``; with None only frames smaller than the crop grow."""
    side = resize if resize is not None else max(crop, min(height, width))
    scale = side / min(height, width)
    return max(side, round(height * scale)), max(side, round(width * scale))


def resize_frame(frame: Tensor, size: tuple[int, int], mode: str) -> Tensor:
    """uint8 (C, H, W) -> uint8 (C, *size): ``bilinear`` antialiased, or ``nearest`` (pixel
    centres, never blending values: for masks and masked channels)."""
    if tuple(frame.shape[-2:]) == size:
        return frame
    x = frame[None].float()
    if mode == "nearest":
        out = F.interpolate(x, size=size, mode="nearest-exact")
    else:
        out = F.interpolate(x, size=size, mode="bilinear", antialias=True, align_corners=False)
    return out[0].round_().clamp_(0, 255).to(torch.uint8)


def crop_frame(frame: Tensor, crop: int, train: bool) -> Tensor:
    """A random ``crop`` square mirrored half the time (torch's global RNG, which the sample
    stream seeds per item), or the centre square; always a contiguous copy, so callers may
    modify it without touching a cached frame."""
    height, width = frame.shape[-2:]
    if train:
        top = int(torch.randint(height - crop + 1, ()))
        left = int(torch.randint(width - crop + 1, ()))
        out = frame[:, top : top + crop, left : left + crop]
        if bool(torch.rand(()) < 0.5):
            out = out.flip(-1)
    else:
        top, left = (height - crop) // 2, (width - crop) // 2
        out = frame[:, top : top + crop, left : left + crop]
    return out.clone(memory_format=torch.contiguous_format)


class ChannelDataset(Dataset):
    """(uint8 (C, crop, crop), label) items from a ChannelSource: shorter side resized to
    ``resize`` (bilinear, antialiased), then a random crop and mirror (``train``) or the
    centre crop. ``num_channels`` is what the split expects; a mismatch fails here, naming the
    fix, rather than as a shape error inside the first step."""

    collate = staticmethod(ImageDataset.collate)

    def __init__(
        self,
        source: ChannelSource,
        resize: int | None,
        crop: int,
        train: bool = True,
        num_channels: int | None = None,
    ) -> None:
        if crop < 1 or (resize is not None and resize < crop):
            raise ValueError(f"need 1 <= crop <= resize, got crop={crop}, resize={resize}")
        if num_channels is not None and num_channels != source.num_channels:
            raise DatasetError(
                f"{source.path}: the data has {source.num_channels} channels but the split "
                f"expects {num_channels}; give the split's n= the data's count "
                f"(e.g. channels:A/B:n={source.num_channels})"
            )
        if len(source) == 0:
            raise DatasetError(f"{source.path}: no images")
        self.source, self.resize, self.crop, self.train = source, resize, crop, train

    def __len__(self) -> int:
        return len(self.source)

    def __getitem__(self, i: int) -> tuple[Tensor, int]:
        image = self.source[i]
        frame = torch.from_numpy(np.ascontiguousarray(image.transpose(2, 0, 1)))
        size = resized_shape(*frame.shape[-2:], self.resize, self.crop)
        frame = resize_frame(frame, size, "bilinear")
        return crop_frame(frame, self.crop, self.train), self.source.label(i)

    def report(self) -> str:
        """One line for the end of a run: what the model was trained on."""
        mode = "random crops + mirror" if self.train else "centre crops"
        return f"channel data: {self.source.describe()}; {mode} of {self.crop} px"
