"""Held-out RGB-D frames: one deterministic grammar for which frames are held out, shared by
``rgbd-split`` (which writes both sets as npz files) and ``rgbd-eval`` (which scores a model on
the held-out ones), so that both commands see the same frames (docs/RGBD.md, "Held-out frames").
"""

from __future__ import annotations

import logging
import re
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from ..atomic import atomic_write
from ..data.errors import DatasetError
from ..errors import SettingError
from .hha import Intrinsics
from .sources import RGBDSelection, RGBDSource, open_rgbd

log = logging.getLogger("splitbrain.rgbd")

__all__ = ["holdout_indices", "split_frames", "write_npz"]


def holdout_indices(sizes: Sequence[int], spec: str) -> tuple[list[int], list[int]]:
    """(training, held-out) indices into the concatenation of sources of ``sizes`` frames.

    ``spec``: a fraction ``F`` in (0, 1), the last round(F * n) frames of each source (a
    contiguous tail: neighbouring frames of a sequence are near-duplicates, so an interleaved
    holdout would leak); ``every:K``, frames K-1, 2K-1, ... of each source; or explicit
    0-based indices into the concatenation, ``3,10,20-25``.
    """
    total = sum(sizes)
    starts = np.cumsum([0, *sizes])[:-1].tolist()

    def per_source(pick) -> set[int]:
        return {start + i for start, n in zip(starts, sizes, strict=True) for i in pick(n)}

    try:
        if spec.startswith("every:"):
            k = int(spec.removeprefix("every:"))
            if k < 2:
                raise ValueError
            held = per_source(lambda n: range(k - 1, n, k))
        elif re.fullmatch(r"0?\.\d+", spec):
            fraction = float(spec)
            held = per_source(lambda n: range(n - round(fraction * n), n))
        else:
            held = set()
            for part in spec.split(","):
                low, dash, high = part.partition("-")
                held.update(range(int(low), int(high if dash else low) + 1))
    except ValueError:
        raise SettingError(
            "holdout",
            "use a fraction like 0.15, every:K (K >= 2), or indices like 3,10,20-25",
            repr(spec),
        ) from None
    if not held or max(held) >= total or len(held) == total:
        raise SettingError(
            "holdout", f"holds out {len(held)} of {total} frames (indices must be below "
            f"{total}); both sets must be non-empty", repr(spec),
        )  # fmt: skip
    test = sorted(held)
    return [i for i in range(total) if i not in held], test


def split_role(spec: str) -> str | None:
    """Which side of ``rgbd-split`` an RGB-D npz holds ("train", "test"), None otherwise."""
    path = Path(spec.removeprefix("npz:"))
    if path.suffix != ".npz" or not path.is_file():
        return None
    with np.load(path, allow_pickle=False) as arrays:
        return str(arrays["split_role"]) if "split_role" in arrays.files else None


def split_frames(
    specs: Sequence[str], holdout: str, cameras: Sequence[Intrinsics | None] | None = None
) -> tuple[RGBDSelection, RGBDSelection]:
    """The (training, held-out) frames of the RGB-D sources ``specs``, concatenated in order;
    ``cameras``, one per source, override the intrinsics the files give."""
    cameras = cameras or [None] * len(specs)
    sources = [open_rgbd(s, k) for s, k in zip(specs, cameras, strict=True)]
    train, test = holdout_indices([len(s) for s in sources], holdout)
    return RGBDSelection(sources, train), RGBDSelection(sources, test)


def write_npz(source: RGBDSource, path: str | Path, role: str | None = None) -> Path:
    """Write frames as an ``npz:`` RGB-D file that ``open_rgbd`` reads back: ``rgb``, z-depth
    ``depth`` (range maps already converted), ``item_id``, and ``labels`` / ``intrinsics``
    when known; ``role`` ("train" or "test": which side of ``rgbd-split`` it is) as
    ``split_role``. Frames whose camera is unknown while others' are known are written with the
    default camera (with a warning): the format has one intrinsics row per frame or none."""
    frames = [source[i] for i in range(len(source))]
    shapes = {rgb.shape for rgb, _ in frames}
    if len(shapes) != 1:
        raise DatasetError(
            f"{source.path}: frames differ in size {sorted(shapes)}; an npz needs one"
        )
    arrays = {
        "rgb": np.stack([rgb for rgb, _ in frames]),
        "depth": np.stack([depth for _, depth in frames]).astype(np.float32),
        "item_id": np.array([source.name(i) for i in range(len(source))]),
        "depth_kind": np.array("z_m"),
    }
    if role is not None:
        arrays["split_role"] = np.array(role)
    if source.labels is not None:
        arrays["labels"] = np.asarray(source.labels)
    cameras = [source.intrinsics(i) for i in range(len(source))]
    unknown = sum(c is None for c in cameras)
    if unknown < len(cameras):
        if unknown:
            log.warning(
                f"{path}: {unknown} frames without intrinsics written with the default camera"
            )
        h, w = frames[0][1].shape
        cameras = [c or Intrinsics.default(h, w) for c in cameras]
        arrays["intrinsics"] = np.array([[c.fx, c.fy, c.cx, c.cy] for c in cameras])
    return atomic_write(path, lambda tmp: _savez(tmp, arrays))


def _savez(path: Path, arrays: dict[str, np.ndarray]) -> None:
    with open(path, "wb") as f:  # a file object: np.savez would append .npz to the name
        np.savez_compressed(f, **arrays)
