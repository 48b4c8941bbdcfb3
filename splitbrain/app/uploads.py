"""What the web page takes: an uploaded file that decodes as the commands decode photographs,
within a pixel limit. Kept apart from the processing so that the command line reads the limit
without importing the task packages."""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
from PIL import Image

from ..data.decode import decode_file
from ..data.errors import BadImage
from ..inference.colorize_files import MIN_SIDE

#: The largest photograph the page takes, in megapixels: a 48-50 MP phone photo fits; colouring
#: one at full size holds a few float copies of it in memory (about 5.5 GB at 50 MP).
MAX_MEGAPIXELS = 50.0


def read_upload(path: str | Path, max_megapixels: float = MAX_MEGAPIXELS) -> np.ndarray:
    """(H, W, 3) uint8 of an uploaded file, decoded as the commands decode photographs; a
    BadImage naming the file (not the server's copy of it) when it is no readable image, has
    more than ``max_megapixels`` (read from its header: such a file is never decoded) or a
    shorter side under ``MIN_SIDE``."""
    name = Path(path).name
    try:
        with warnings.catch_warnings():  # a large photo is refused below, in plain words
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            with Image.open(path) as image:
                width, height = image.size
    except Image.DecompressionBombError as error:
        raise BadImage(name, "too large", str(error)) from None
    except Exception:  # decode_file says what is wrong with it
        width = height = 0
    if width * height > max_megapixels * 1e6:
        raise BadImage(
            name, "too large",
            f"{width}x{height}, {width * height / 1e6:.3g} megapixels; this page takes at most "
            f"{max_megapixels:g}",
        )  # fmt: skip
    try:
        rgb, _ = decode_file(str(path))
    except BadImage as bad:  # Pillow's words name the server's copy
        raise BadImage(name, bad.reason, bad.detail.replace(str(path), name)) from None
    if min(rgb.shape[:2]) < MIN_SIDE:
        raise BadImage(name, "too small", f"{rgb.shape[1]}x{rgb.shape[0]}, under {MIN_SIDE} px")
    return rgb
