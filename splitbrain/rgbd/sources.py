"""RGB-D sources: aligned colour + metric depth, whatever format they come in.

Every source follows the data sources' protocol (``splitbrain.data.base.Source``: indexing,
names, labels) and yields ``(rgb, depth)`` per item: ``rgb`` (H,W,3) uint8 RGB and ``depth``
(H,W) float32 z-depth in metres with 0 = missing, so that HHA (``rgbd.hha``) and the RGB-D
split-brain model see one convention. ``intrinsics(i)`` gives the camera in 0-based pixel
coordinates, or None when the source does not know it (``hha`` then warns and assumes a
Kinect-like camera). ``open_rgbd("FORMAT:PATH")`` picks the reader; ``RGBDSelection`` joins
several sources and selects frames of them. ``open_data`` opens any of the three data stacks.
"""

from __future__ import annotations

import logging
import os
from abc import abstractmethod
from collections.abc import Sequence
from pathlib import Path

import h5py
import numpy as np
import torch
from PIL import Image

from ..data.base import Source, spread_items
from ..data.errors import DatasetError
from ..data.npz import read_npz
from ..data.sources import open_channels, open_source
from ..errors import literal
from .hha import Intrinsics, range_to_z

log = logging.getLogger("splitbrain.rgbd")

__all__ = [
    "NYU_INTRINSICS",
    "TUM_DEPTH_SCALE",
    "SUN_DEPTH_SCALE",
    "NYUDepthMat",
    "RGBDError",
    "RGBDNpz",
    "RGBDPngPairs",
    "RGBDSelection",
    "RGBDSource",
    "decode_depth_png",
    "open_data",
    "open_rgbd",
]

# NYU Depth v2 colour camera (toolbox camera_params.m, 640x480), published for MATLAB's
# 1-based pixel grid and shifted here to 0-based.
NYU_INTRINSICS = Intrinsics.from_one_based(518.857901, 519.469611, 325.582449, 253.736166)
TUM_DEPTH_SCALE = 5000.0  # TUM RGB-D: 16-bit PNG units per metre
SUN_DEPTH_SCALE = 1000.0  # SUN RGB-D: millimetres, after rotating the 16-bit value by 3 bits
_COLOR_DIRS = ("rgb", "image", "color", "colour")
_COLOR_EXTS = (".png", ".jpg", ".jpeg", ".ppm", ".bmp")


class RGBDError(DatasetError, ValueError):
    """An RGB-D file or folder that is missing, malformed, or not in the expected layout.

    A DatasetError like the image sources' errors, and a ValueError (a bad path or layout).
    """


class RGBDSource(Source):
    """What every reader provides: ``src[i] -> (rgb, depth)``, ``len``, names and cameras."""

    path: Path

    @property
    def spec(self) -> str:
        return str(self.path)

    @abstractmethod
    def intrinsics(self, i: int) -> Intrinsics | None:
        """Camera of frame ``i`` (0-based pixel coordinates), or None when unknown."""

    def describe(self) -> str:
        """One line for logs: what was read, how many frames, and what is known of the camera."""
        known = sum(self.intrinsics(i) is not None for i in range(len(self)))
        labels = "no labels" if self.labels is None else f"{len(np.unique(self.labels))} labels"
        return (
            f"{type(self).__name__}({self.path}): {len(self)} frames, {labels}, "
            f"intrinsics known for {known}/{len(self)}"
        )


def _check(condition: bool, path: os.PathLike | str, problem: str) -> None:
    if not condition:
        raise RGBDError(f"{path}: {problem}")


class RGBDNpz(RGBDSource):
    """Frames stored in one .npz: ``rgb`` (N,H,W,3) uint8 and ``depth`` (N,H,W) metres.

    Optional keys: ``labels`` (N,) int, ``intrinsics`` (N,4) fx, fy, cx, cy (0-based), and
    ``item_id`` (N,) names. When ``depth_kind`` (scalar or per frame) starts with ``range``
    the depth is Euclidean range (Cornell grasping data) and is converted to z-depth with the
    frame's intrinsics (the ``intrinsics`` argument, else the file's, else the Kinect-like
    default with a warning). ``intrinsics`` given here overrides the file for every frame.
    """

    def __init__(self, path: os.PathLike | str, intrinsics: Intrinsics | None = None) -> None:
        self.path = Path(path)
        _check(self.path.is_file(), self.path, "no such file")
        arrays = read_npz(self.path, error=RGBDError)
        for key in ("rgb", "depth"):
            _check(key in arrays, self.path, f"missing key {key!r} (has {sorted(arrays)})")
        rgb, depth = arrays["rgb"], arrays["depth"]
        _check(
            rgb.ndim == 4 and rgb.shape[-1] == 3 and rgb.dtype == np.uint8,
            self.path,
            f"'rgb' must be (N,H,W,3) uint8, got {rgb.shape} {rgb.dtype}",
        )
        _check(
            depth.shape == rgb.shape[:3] and np.issubdtype(depth.dtype, np.floating),
            self.path,
            f"'depth' must be float (N,H,W) = {rgb.shape[:3]} metres, got {depth.shape} "
            f"{depth.dtype}",
        )
        n = len(rgb)
        self.rgb, self.depth = rgb, depth.astype(np.float32, copy=False)
        if "labels" in arrays:
            labels = arrays["labels"]
            _check(
                labels.shape == (n,) and np.issubdtype(labels.dtype, np.integer),
                self.path,
                f"'labels' must be ({n},) int, got {labels.shape} {labels.dtype}",
            )
            self.labels = labels
        self._cameras: list[Intrinsics | None] = [intrinsics] * n
        if intrinsics is None and "intrinsics" in arrays:
            k = arrays["intrinsics"]
            _check(k.shape == (n, 4), self.path, f"'intrinsics' must be ({n},4), got {k.shape}")
            self._cameras = [Intrinsics(*map(float, row)) for row in k]
        self._names = [str(s) for s in arrays.get("item_id", [])]
        _check(len(self._names) in (0, n), self.path, f"'item_id' must have {n} entries")
        kind = np.broadcast_to(arrays.get("depth_kind", np.array("z")), (n,))
        self._is_range = np.char.startswith(kind.astype(str), "range")

    def __len__(self) -> int:
        return len(self.rgb)

    def _item(self, i: int) -> tuple[np.ndarray, np.ndarray]:
        depth = self.depth[i]
        if self._is_range[i]:
            depth = _range_to_z(depth, self.intrinsics(i), self.path)
        return self.rgb[i].copy(), depth.copy()  # copies: callers may modify them in place

    def intrinsics(self, i: int) -> Intrinsics | None:
        return self._cameras[self._index(i)]

    def name(self, i: int) -> str:
        i = self._index(i)
        return self._names[i] if self._names else f"{self.path.stem}[{i}]"


def _range_to_z(range_m: np.ndarray, camera: Intrinsics | None, path: Path) -> np.ndarray:
    """z-depth from a range map; a range map without intrinsics falls back to the default."""
    if camera is None:
        camera = Intrinsics.default(*range_m.shape)
        log.warning(
            f"{path}: range depth without intrinsics; converting to z with the Kinect-like "
            f"default {camera}"
        )
    return range_to_z(torch.from_numpy(range_m)[None], camera)[0].numpy()


class NYUDepthMat(RGBDSource):
    """NYU Depth v2 labelled set (``nyu_depth_v2_labeled.mat``, MATLAB v7.3 = HDF5).

    MATLAB writes column-major, so HDF5 sees the arrays with their axes reversed: ``images``
    is (N,3,W,H) uint8 and ``depths`` (N,W,H) float metres; each frame is transposed back to
    (H,W,3) / (H,W) here. ``raw=True`` reads ``rawDepths`` (holes as 0) instead of the
    colourisation-filled ``depths``. The per-pixel class map ``labels`` (N,W,H), when present,
    is available as ``segmentation(i)``; there are no image-level ``labels``. The file is
    opened lazily and per process, so the source can be used from DataLoader workers.
    """

    def __init__(self, path: os.PathLike | str, raw: bool = False) -> None:
        self.path = Path(path)
        _check(self.path.is_file(), self.path, "no such file")
        self._depth_key = "rawDepths" if raw else "depths"
        self._handle: h5py.File | None = None
        self._pid = -1
        try:
            with h5py.File(self.path, "r") as f:
                shapes = {k: f[k].shape for k in f if isinstance(f[k], h5py.Dataset)}
        except OSError as err:
            raise RGBDError(f"{self.path}: not an HDF5 (MATLAB v7.3) file ({err})") from err
        for key in ("images", self._depth_key):
            _check(key in shapes, self.path, f"missing dataset {key!r} (has {sorted(shapes)})")
        images = shapes["images"]
        _check(
            len(images) == 4 and images[1] == 3,
            self.path,
            f"'images' must be (N,3,W,H) as MATLAB v7.3 stores H x W x 3 x N, got {images}",
        )
        n, _, w, h = images
        for key in (self._depth_key, "labels"):
            if key in shapes:
                _check(
                    shapes[key] == (n, w, h),
                    self.path,
                    f"{key!r} must be (N,W,H) = {(n, w, h)} to match 'images', got {shapes[key]}",
                )
        self._n, self._hw, self._has_segmentation = n, (h, w), "labels" in shapes

    def __getstate__(self) -> dict:
        return {**self.__dict__, "_handle": None, "_pid": -1}

    def _file(self) -> h5py.File:
        if self._handle is None or self._pid != os.getpid():
            self._handle, self._pid = h5py.File(self.path, "r"), os.getpid()
        return self._handle

    def __len__(self) -> int:
        return self._n

    def _item(self, i: int) -> tuple[np.ndarray, np.ndarray]:
        f = self._file()
        rgb = np.ascontiguousarray(f["images"][i].transpose(2, 1, 0), dtype=np.uint8)
        depth = np.ascontiguousarray(f[self._depth_key][i].T, dtype=np.float32)
        return rgb, depth

    def segmentation(self, i: int) -> np.ndarray | None:
        """Per-pixel class indices (H,W) int64 (0 = unlabelled), or None if the file has none."""
        if not self._has_segmentation:
            return None
        return np.ascontiguousarray(self._file()["labels"][self._index(i)].T, dtype=np.int64)

    def intrinsics(self, i: int) -> Intrinsics | None:
        self._index(i)
        h, w = self._hw
        return NYU_INTRINSICS if (h, w) == (480, 640) else None

    def name(self, i: int) -> str:
        return f"nyu{self._index(i) + 1:04d}"  # the 1-based numbering of the NYU toolbox


class RGBDSelection(RGBDSource):
    """Frames of one or more sources, in order, optionally only those at ``indices`` (of the
    concatenation): several files as one training set, and held-out subsets of them."""

    def __init__(self, sources: Sequence[RGBDSource], indices: Sequence[int] | None = None) -> None:
        self.sources = list(sources)
        frames = [(s, i) for s in self.sources for i in range(len(s))]
        self._frames = frames if indices is None else [frames[i] for i in indices]
        self.path = Path("+".join(str(s.path) for s in self.sources))
        if all(s.labels is not None for s in self.sources):
            self.labels = np.array([s.labels[i] for s, i in self._frames], dtype=np.int64)

    def __len__(self) -> int:
        return len(self._frames)

    def _item(self, i: int) -> tuple[np.ndarray, np.ndarray]:
        source, j = self._frames[i]
        return source[j]

    def intrinsics(self, i: int) -> Intrinsics | None:
        source, j = self._frames[self._index(i)]
        return source.intrinsics(j)

    def name(self, i: int) -> str:
        source, j = self._frames[self._index(i)]
        return source.name(j)


def decode_depth_png(value: np.ndarray, convention: str, depth_scale: float | None) -> np.ndarray:
    """16-bit depth PNG values -> metres (float32, 0 stays 0).

    ``tum``: value / 5000. ``sun``: the SUN RGB-D toolbox's 3-bit right rotation
    (v >> 3 | v << 13) then / 1000. ``depth_scale`` (units per metre) overrides the divisor.
    """
    v = value.astype(np.uint16)
    if convention == "sun":
        v = (v >> 3) | (v << 13)  # uint16 arithmetic drops the bits shifted out
        scale = SUN_DEPTH_SCALE
    elif convention == "tum":
        scale = TUM_DEPTH_SCALE
    else:
        raise ValueError(f"unknown depth PNG convention {convention!r} (use 'tum' or 'sun')")
    return (v.astype(np.float32) / np.float32(depth_scale or scale)).astype(np.float32)


def _read_depth_png(path: Path) -> np.ndarray:
    with Image.open(path) as img:
        _check(
            img.mode in ("I;16", "I;16B", "I;16L", "I"),
            path,
            f"depth must be a 16-bit single-channel PNG, got mode {img.mode}",
        )
        value = np.asarray(img)
    _check(
        value.min(initial=0) >= 0 and value.max(initial=0) <= 0xFFFF,
        path,
        "depth values outside the 16-bit range",
    )
    return value.astype(np.uint16)


def _read_sun_intrinsics(path: Path) -> Intrinsics:
    try:
        k = np.loadtxt(path)
    except ValueError as err:
        raise RGBDError(f"{path}: not a 3x3 intrinsic matrix ({err})") from err
    _check(k.shape == (3, 3), path, f"intrinsics must be a 3x3 matrix, got {k.shape}")
    return Intrinsics.from_one_based(k[0, 0], k[1, 1], k[0, 2], k[1, 2])


class RGBDPngPairs(RGBDSource):
    """Colour images paired by file stem with 16-bit depth PNGs.

    A pair folder has a colour subfolder (``rgb``, ``image``, ``color`` or ``colour``) and a
    ``depth`` subfolder: a TUM sequence (``rgb/``, ``depth/``, /5000) or a SUN RGB-D sample
    (``image/``, ``depth/``, 3-bit rotation, /1000, ``intrinsics.txt``). ``folder`` is a pair
    folder or a tree of them (e.g. a SUN RGB-D root). ``convention`` None detects it from the
    layout (``rgb/`` -> tum, ``image/`` -> sun). SUN ``intrinsics.txt`` (1-based, like its
    MATLAB toolbox) is read per sample; ``intrinsics`` given here overrides it for all frames.
    """

    def __init__(
        self,
        folder: os.PathLike | str,
        depth_scale: float | None = None,
        convention: str | None = None,
        intrinsics: Intrinsics | None = None,
    ) -> None:
        self.path = Path(folder)
        _check(self.path.is_dir(), self.path, "no such folder")
        roots = [self.path] if _color_dir(self.path) else []
        roots = roots or sorted(d for d in self.path.rglob("*") if d.is_dir() and _color_dir(d))
        _check(
            bool(roots),
            self.path,
            f"no pair folder (a 'depth/' beside one of {'/, '.join(_COLOR_DIRS)}/) in or below",
        )
        if convention is None:
            found = {_color_dir(r).name for r in roots}
            _check(
                found in ({"rgb"}, {"image"}),
                self.path,
                f"cannot tell the depth convention from colour folders {sorted(found)}; "
                "pass convention='tum' or 'sun'",
            )
            convention = "tum" if found == {"rgb"} else "sun"
        if convention not in ("tum", "sun"):
            raise ValueError(f"unknown depth PNG convention {convention!r} (use 'tum' or 'sun')")
        self.convention, self.depth_scale = convention, depth_scale
        self._pairs: list[tuple[Path, Path, Intrinsics | None]] = []
        for root in roots:
            camera = intrinsics
            if camera is None and (root / "intrinsics.txt").is_file() and convention == "sun":
                camera = _read_sun_intrinsics(root / "intrinsics.txt")
            depths = {p.stem: p for p in (root / "depth").glob("*.png")}
            for color in sorted(_color_dir(root).iterdir()):
                if color.suffix.lower() in _COLOR_EXTS and color.stem in depths:
                    self._pairs.append((color, depths[color.stem], camera))
        _check(bool(self._pairs), self.path, "no colour image has a depth PNG of the same stem")

    def __len__(self) -> int:
        return len(self._pairs)

    def _item(self, i: int) -> tuple[np.ndarray, np.ndarray]:
        color, depth_path, _ = self._pairs[i]
        with Image.open(color) as img:
            rgb = np.array(img.convert("RGB"))  # writable: callers may modify it
        depth = decode_depth_png(_read_depth_png(depth_path), self.convention, self.depth_scale)
        _check(
            depth.shape == rgb.shape[:2],
            depth_path,
            f"depth is {depth.shape[1]}x{depth.shape[0]}, its colour image {color.name} "
            f"{rgb.shape[1]}x{rgb.shape[0]} (width x height; both as stored, EXIF orientation "
            "ignored)",
        )
        return rgb, depth

    def intrinsics(self, i: int) -> Intrinsics | None:
        return self._pairs[self._index(i)][2]

    def name(self, i: int) -> str:
        return self._pairs[self._index(i)][0].relative_to(self.path).with_suffix("").as_posix()


def _color_dir(root: Path) -> Path | None:
    if not (root / "depth").is_dir():
        return None
    return next((root / d for d in _COLOR_DIRS if (root / d).is_dir()), None)


def open_rgbd(spec: str | os.PathLike, intrinsics: Intrinsics | None = None) -> RGBDSource:
    """Open an RGB-D source from ``FORMAT:PATH`` or a bare path; ``intrinsics`` is the camera
    of every frame, over what the files say (NYU's camera is known, so not for ``nyu``).

    FORMAT is ``npz``, ``nyu`` (labelled .mat), ``pairs`` (convention detected from the
    layout), or ``tum`` / ``sun`` (pairs with that convention). Without one, a ``.npz`` file,
    a ``.mat`` file or a folder of pairs is recognised by its extension or layout.
    """
    text = os.fspath(spec)
    fmt, sep, rest = text.partition(":")

    def nyu(path):
        if intrinsics is not None:
            raise RGBDError(
                f"{literal(text)}: NYU Depth v2's camera is known; {{intrinsics}} does not apply",
                ("intrinsics",),
            )
        return NYUDepthMat(path)

    readers = {
        "npz": lambda p: RGBDNpz(p, intrinsics),
        "nyu": nyu,
        "pairs": lambda p: RGBDPngPairs(p, intrinsics=intrinsics),
        "tum": lambda p: RGBDPngPairs(p, convention="tum", intrinsics=intrinsics),
        "sun": lambda p: RGBDPngPairs(p, convention="sun", intrinsics=intrinsics),
    }
    if sep and fmt in readers:
        return readers[fmt](rest)
    path = Path(text)
    if path.is_dir():
        return readers["pairs"](path)
    by_suffix = {".npz": readers["npz"], ".mat": nyu}
    if path.suffix.lower() in by_suffix:
        return by_suffix[path.suffix.lower()](path)
    raise RGBDError(
        f"{text}: cannot tell the RGB-D format; use npz:PATH, nyu:PATH.mat, pairs:DIR, "
        "tum:DIR or sun:DIR"
    )


#: What a channel space reads (``ChannelSpace.data``), each opened by its own stack.
DATA_KINDS = ("images", "channels", "rgbd")


def open_data(
    spec: str,
    kind: str,
    split: str = "train",
    download: bool = False,
    intrinsics: Intrinsics | None = None,
    max_items: int | None = None,
) -> Source:
    """``spec`` opened as ``kind`` data: photographs (``open_source``, the only kind with
    splits and downloads), channel stacks (``open_channels``) or RGB-D frames (``open_rgbd``,
    with the camera ``intrinsics``); the last two are one split per file. Photographs and
    channel stacks are cut to an evenly spread ``max_items`` when given; RGB-D frames are few,
    and their HHA is the cost, not their count. It lives here, the lowest package that knows
    all three, so that no caller chooses among them itself."""
    if kind == "images":
        return spread_items(open_source(spec, split=split, download=download), max_items)
    if kind == "channels":
        return spread_items(open_channels(spec), max_items)
    if kind == "rgbd":
        return open_rgbd(spec, intrinsics)
    raise ValueError(f"data kind {kind!r}: expected one of {', '.join(DATA_KINDS)}")
