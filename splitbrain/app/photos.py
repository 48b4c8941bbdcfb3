"""What the web page does to uploaded photographs, without the page: each is read within the
pixel limit (``uploads``), coloured at its full size, and segmented and searched for objects
when those networks are given, by the functions the commands use. A bad upload becomes one line
saying why, and the others are still done, so the page never fails on one file."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from PIL import Image

from ..colorize import colorize
from ..data.errors import BadImage
from ..detect.predict import detect_photo, drawn
from ..models import SplitBrain
from ..segment.pictures import colour_mask, overlay
from ..segment.predict import palette_of, segment_photo
from .uploads import MAX_MEGAPIXELS, read_upload

log = logging.getLogger("splitbrain.app")

#: What a coloured upload is saved as, after its own name.
COLOURED = "-colorized.png"


@dataclass(frozen=True)
class Networks:
    """The networks behind the page: one that colours, and optionally a segmenter and a
    detector (each a network whose file holds that head)."""

    colorizer: SplitBrain
    segmenter: SplitBrain | None = None
    detector: SplitBrain | None = None


@dataclass
class Pictures:
    """What the page shows for a batch of uploads: the coloured PNGs written (full size), each
    segmentation (overlay, then mask) and each photograph with its boxes, captioned with the
    upload's name, and one line per upload that was refused."""

    coloured: list[Path] = field(default_factory=list)
    segmented: list[tuple[np.ndarray, str]] = field(default_factory=list)
    detected: list[tuple[Image.Image, str]] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)


def segmentation(model: SplitBrain, rgb: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(overlay, mask) of a photograph at its full size, (H, W, 3) uint8 each, in the class
    colours of ``legend``."""
    mask = colour_mask(segment_photo(model, rgb), palette_of(model))
    return overlay(rgb, mask), mask


def legend(model: SplitBrain) -> list[tuple[str, tuple[int, ...]]]:
    """(name, RGB) of each class of a segmenter, as its masks colour them."""
    palette = palette_of(model)
    classes = model.config.segmenter[2]
    return [(name, tuple(int(v) for v in palette[k])) for k, name in enumerate(classes)]


def boxes(model: SplitBrain, rgb: np.ndarray) -> Image.Image:
    """The photograph with a detector's boxes drawn, as ``detect --predict`` draws them."""
    return drawn(rgb, detect_photo(model, rgb), list(model.config.detector[0]))


def process(
    networks: Networks,
    uploads: Sequence[str | Path],
    out: Path,
    max_megapixels: float = MAX_MEGAPIXELS,
) -> Pictures:
    """Colour (and segment, and detect objects in) every upload, writing each coloured one as
    ``out/K/NAME-colorized.png`` (a folder per upload: two uploads may share a name)."""
    pictures = Pictures()
    for k, upload in enumerate(uploads):
        name = Path(upload).name
        try:
            rgb = read_upload(upload, max_megapixels)
        except BadImage as bad:
            log.warning("skipping %s", bad)
            pictures.problems.append(str(bad))
            continue
        target = out / str(k) / (Path(name).stem + COLOURED)
        target.parent.mkdir(parents=True)
        Image.fromarray(colorize(networks.colorizer, rgb)).save(target, "PNG")
        pictures.coloured.append(target)
        if networks.segmenter is not None:
            shown, mask = segmentation(networks.segmenter, rgb)
            pictures.segmented += [(shown, name), (mask, f"{name}: mask")]
        if networks.detector is not None:
            pictures.detected.append((boxes(networks.detector, rgb), name))
    return pictures
