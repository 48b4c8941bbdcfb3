"""Decode one image file with Pillow into RGB uint8, converting what can be converted.

Real photo folders hold odd files: palette GIF-style PNGs, RGBA screenshots, CMYK JPEGs from
print workflows, 16-bit scans, greyscale shots, truncated downloads, zero-byte placeholders and
text files with an image extension. The first group is converted (and the conversion named, so it
can be counted); the second raises ``BadImage`` with a short reason so a run can skip the item.
"""

from __future__ import annotations

import io
import math
import os

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from .errors import BadImage

#: Why an item was skipped, in the order a summary lists them.
SKIP_REASONS = (
    "truncated",
    "empty",
    "not an image",
    "corrupt",
    "too small",
    "too large",
    "unsupported mode",
    "unreadable file",
    "no mask",
    "mask size differs",
    "bad mask value",
    "lossy mask",
    "no annotation",
    "malformed annotation",
    "unknown category",
    "bad box",
)
#: What was converted to RGB, in the order a summary lists them.
CONVERSIONS = ("palette", "RGBA", "CMYK", "16-bit", "greyscale", "other mode")

_ALPHA = {"PA", "RGBA", "RGBa", "LA", "La"}
_SIXTEEN_BIT = {"I;16", "I;16L", "I;16B", "I;16N", "I"}


def conversion_for(image: Image.Image, path: str) -> str | None:
    """The conversion ``image`` needs to become RGB (None when it is RGB); raises BadImage."""
    mode = image.mode
    if mode == "RGB":
        return None
    if mode in ("P", "PA"):
        return "palette"
    if mode in ("RGBA", "RGBa"):
        return "RGBA"
    if mode in ("L", "LA", "La", "1"):
        return "greyscale"
    if mode in _SIXTEEN_BIT:
        return "16-bit"
    if mode == "CMYK":
        return "CMYK"
    if mode in ("YCbCr", "LAB", "HSV"):
        return "other mode"
    raise BadImage(path, "unsupported mode", mode)


def _reason(error: Exception) -> str:
    """The skip reason for an exception raised while opening or decoding a file."""
    if isinstance(error, UnidentifiedImageError):
        return "not an image"
    if isinstance(error, Image.DecompressionBombError):
        return "too large"
    if isinstance(error, OSError) and error.errno is not None:  # the filesystem's, not Pillow's
        return "unreadable file"
    return "truncated" if "truncated" in str(error).lower() else "corrupt"


def _draft(image: Image.Image, min_side: int) -> None:
    """Let a JPEG decode at 1/2, 1/4 or 1/8 scale (libjpeg's DCT scaling, several times
    faster) as long as its shorter side stays at least ``min_side``."""
    width, height = image.size
    scale = min_side / min(width, height)
    if image.format == "JPEG" and scale < 1:
        image.draft(image.mode, (math.ceil(width * scale), math.ceil(height * scale)))


def _open(
    path: str, min_side: int | None = None, data: bytes | None = None
) -> tuple[Image.Image, tuple[int, int]]:
    """Open and fully decode ``path``, or ``data`` (its bytes) when given (a JPEG at reduced
    scale when ``min_side`` allows it); the image and its stored (width, height). Every way
    that fails becomes a ``BadImage``."""
    try:
        if (os.path.getsize(path) if data is None else len(data)) == 0:
            raise BadImage(path, "empty")
        image = Image.open(path if data is None else io.BytesIO(data))
        size = image.size
        if min_side:
            _draft(image, min_side)
    except BadImage:
        raise
    except Exception as error:  # Pillow parses untrusted bytes and can raise almost anything
        raise BadImage(path, _reason(error), str(error)) from None
    try:
        image.load()
    except Exception as error:
        image.close()
        raise BadImage(path, _reason(error), str(error)) from None
    return image, size


def _composite_on_white(rgba: np.ndarray) -> np.ndarray:
    """Alpha-blend onto white: transparent pixels often hold arbitrary colour (often black)."""
    alpha = rgba[..., 3:4].astype(np.uint16)
    rgb = rgba[..., :3].astype(np.uint16)
    return ((rgb * alpha + 255 * (255 - alpha) + 127) // 255).astype(np.uint8)


def to_rgb(image: Image.Image, path: str) -> tuple[np.ndarray, str | None]:
    """An (H, W, 3) uint8 RGB array of ``image`` and the conversion it needed (None if RGB)."""
    note = conversion_for(image, path)
    if note is None:
        return np.array(image), None
    if note == "16-bit":
        # 16-bit greyscale (scans, PNG); "I" is Pillow's 32-bit mode that 16-bit files may use.
        grey = np.clip(np.array(image, dtype=np.int64), 0, 65535)
        grey = ((grey + 128) // 257).astype(np.uint8)
        return np.repeat(grey[..., None], 3, axis=2), note
    if image.mode in _ALPHA or "transparency" in image.info:
        return _composite_on_white(np.array(image.convert("RGBA"))), note
    return np.array(image.convert("RGB")), note


def decode_file(
    path: str, min_side: int | None = None, data: bytes | None = None
) -> tuple[np.ndarray, str | None]:
    """Read ``path`` (or ``data``, its bytes, when given) as (H, W, 3) uint8 RGB, upright per
    its EXIF orientation; raises BadImage.

    With ``min_side``, a JPEG may come out scaled down by 2, 4 or 8 (decoded that way, much
    faster than decoding it whole), its shorter side still at least ``min_side``: for images
    that are resized to that side anyway.
    """
    image, _ = _open(path, min_side, data)
    with image:
        try:
            ImageOps.exif_transpose(image, in_place=True)
            return to_rgb(image, path)
        except BadImage:
            raise
        except Exception as error:  # a malformed EXIF block or a mode Pillow cannot convert
            raise BadImage(path, "corrupt", str(error)) from None


#: Pillow's transposition of each EXIF orientation that is not upright (as ``exif_transpose``).
_ORIENTATIONS = {
    2: Image.Transpose.FLIP_LEFT_RIGHT,
    3: Image.Transpose.ROTATE_180,
    4: Image.Transpose.FLIP_TOP_BOTTOM,
    5: Image.Transpose.TRANSPOSE,
    6: Image.Transpose.ROTATE_270,
    7: Image.Transpose.TRANSVERSE,
    8: Image.Transpose.ROTATE_90,
}


def exif_orientation(path: str) -> int:
    """The EXIF orientation of ``path`` (1, upright, when it has none or is unreadable), read
    from its header alone."""
    try:
        with Image.open(path) as image:
            return int(image.getexif().get(0x0112, 1))
    except Exception:  # a file that cannot be read is named when it is decoded
        return 1


def orient(image: Image.Image, orientation: int) -> Image.Image:
    """``image`` turned as EXIF ``orientation`` turns a photograph upright: a mask drawn on a
    photograph's stored pixels stays on them when ``decode_file`` turns the photograph."""
    method = _ORIENTATIONS.get(orientation)
    return image.transpose(method) if method is not None else image


def probe_file(path: str, data: bytes | None = None) -> tuple[str | None, tuple[int, int]]:
    """Decode ``path`` (or ``data``, its bytes) without converting it: (the conversion it
    would need, (height, width)).

    Cheaper than ``decode_file`` for scanning a whole dataset up front: a JPEG is decoded at
    1/8 scale, which reads (and checks) all of its data; raises BadImage.
    """
    image, (width, height) = _open(path, 1, data)
    with image:
        if image.getexif().get(0x0112, 1) in (5, 6, 7, 8):  # orientations that swap the axes
            width, height = height, width
        return conversion_for(image, path), (height, width)
