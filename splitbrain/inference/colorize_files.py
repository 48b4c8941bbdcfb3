"""Colorize photographs on disk at their full resolution: files, folders and glob patterns in,
a mirror of their names in the output folder out (``splitbrain colorize``).

Every input is decoded as pre-training decodes it (Pillow, EXIF orientation applied, odd modes
converted); one that cannot be read, is too small, or cannot be written is skipped with one
line naming it and counted, and the others are still colorized. Consecutive images of the same
size are colorized in batches of at most ``batch_size`` images and ``batch_megapixels`` pixels,
so memory is bounded by a pixel budget however large the photographs: a 12-megapixel photo
goes alone, and each is written as soon as its batch is done. An interrupt keeps what was
written and says how much.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar

import numpy as np
import torch
from PIL import Image

from ..atomic import atomic_write
from ..colorize import colorize_rgb, greyscale
from ..data.decode import decode_file
from ..data.errors import BadImage
from ..models import SplitBrain
from ..outputs import keep_earlier
from ..progress import track
from .inputs import FilesOutcome, Input, find_inputs, output_paths

log = logging.getLogger("splitbrain.inference")

#: Shorter sides under this hold no colour worth recovering: such images are skipped.
MIN_SIDE = 16
FORMATS = {"png": ("PNG", ".png"), "jpg": ("JPEG", ".jpg")}


@dataclass
class ColorizeSettings:
    """How photographs are colorized and written; see ``splitbrain colorize --help``."""

    side: int | None = None  # shorter side the network sees; None: the preset's training resize
    temperature: float | None = None  # None: the weights file's (SplitBrain.decoding)
    decode: str | None = None
    batch_size: int = 8  # images of one size per batch at most ...
    batch_megapixels: float = 4.0  # ... and pixels per batch at most (one image always fits)
    side_by_side: bool = False  # grey | colorized | original (when the input had colour)
    format: str = "png"
    quality: int = 90  # JPEG only
    progress: bool = True
    precision: str = "32-true"  # the network's: bf16-mixed for bf16 autocast
    overwrite: bool = False  # replace earlier colorizations in the output folder


@dataclass
class ColorizeOutcome(FilesOutcome):
    """What a colorization run did, and how many megapixels it colorized."""

    verb: ClassVar[str] = "colorized"
    megapixels: float = 0.0


def _panels(original: np.ndarray, colorized: np.ndarray) -> np.ndarray:
    """grey | colorized, and the original when it had colour."""
    rgb = torch.from_numpy(original).permute(2, 0, 1)[None].float() / 255
    grey = (greyscale(rgb)[0].permute(1, 2, 0).numpy() * 255).round().astype(np.uint8)
    panels = [grey, colorized]
    if not (original == original[..., :1]).all():
        panels.append(original)
    return np.concatenate(panels, axis=1)


class _Run:
    """One colorization run: decoding, batching by size, writing, counting."""

    def __init__(self, model: SplitBrain, settings: ColorizeSettings, targets: dict, bar) -> None:
        self.model, self.settings, self.targets = model, settings, targets
        self.bar = bar  # counts finished inputs: written or skipped
        self.outcome = ColorizeOutcome()
        self.pending: list[tuple[Input, np.ndarray]] = []

    def skip(self, item: Input, reason: str, detail: str = "") -> None:
        self.outcome.skip(item.path, reason, detail)
        self.bar.update()

    def _fits(self, image: np.ndarray) -> bool:
        """Whether ``image`` joins the pending batch within its count and pixel budget."""
        if not self.pending:
            return True
        pixels = sum(pending.shape[0] * pending.shape[1] for _, pending in self.pending)
        return (
            self.pending[0][1].shape == image.shape
            and len(self.pending) < self.settings.batch_size
            and (pixels + image.shape[0] * image.shape[1]) / 1e6 <= self.settings.batch_megapixels
        )

    def add(self, item: Input) -> None:
        try:
            image, _ = decode_file(str(item.path))
        except BadImage as bad:
            self.skip(item, bad.reason, bad.detail)
            return
        if min(image.shape[:2]) < MIN_SIDE:
            self.skip(item, "too small", f"{image.shape[0]}x{image.shape[1]}, under {MIN_SIDE} px")
            return
        if not self._fits(image):
            self.flush()
        self.pending.append((item, image))

    def flush(self) -> None:
        if not self.pending:
            return
        s = self.settings
        images = np.stack([image for _, image in self.pending])
        rgb = torch.from_numpy(images).permute(0, 3, 1, 2).float() / 255
        out = colorize_rgb(self.model, rgb, s.side, s.temperature, s.decode, s.precision).cpu()
        pictures = (out.permute(0, 2, 3, 1).numpy() * 255).round().astype(np.uint8)
        for (item, original), picture in zip(self.pending, pictures, strict=True):
            if s.side_by_side:
                picture = _panels(original, picture)
            if self.write(item, picture):
                self.outcome.megapixels += original.shape[0] * original.shape[1] / 1e6
                self.bar.update()
        self.pending = []

    def write(self, item: Input, picture: np.ndarray) -> bool:
        kind, _ = FORMATS[self.settings.format]
        options = {"quality": self.settings.quality} if kind == "JPEG" else {}
        target = self.targets[item]
        try:
            atomic_write(target, lambda tmp: Image.fromarray(picture).save(tmp, kind, **options))
        except OSError as error:
            self.skip(item, "unwritable output", f"{target}: {error.strerror or error}")
            return False
        self.outcome.written.append(target)
        return True


def colorize_files(
    model: SplitBrain, arguments: list[str], out: str | Path, settings: ColorizeSettings
) -> ColorizeOutcome:
    """Colorize every image the arguments name into ``out``, keeping their names (a folder's
    tree is mirrored); returns what was written and skipped."""
    start = time.perf_counter()
    if settings.format not in FORMATS:
        raise ValueError(f"unknown output format {settings.format!r}; choose png or jpg")
    asked = Path(out)
    suffix = FORMATS[settings.format][1]
    # never its own outputs as inputs: --out, and the OUT-K folders beside it of earlier runs
    earlier = [
        f for f in asked.parent.glob(f"{asked.name}-*") if f.name[len(asked.name) + 1 :].isdigit()
    ]
    items = find_inputs(arguments, outside=[asked, *earlier])

    def holds(folder: Path) -> bool:
        return any(target.exists() for target in output_paths(items, folder, suffix).values())

    out = keep_earlier(asked, settings.overwrite, holds, "colorization of these inputs")
    if out != asked:
        items = find_inputs(arguments, outside=[asked, *earlier, out])
    targets = output_paths(items, out, suffix)
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        raise ValueError(f"{out}: cannot create the output folder ({error.strerror})") from None
    with track(total=len(items), desc="colorizing", unit="img", enabled=settings.progress) as bar:
        run = _Run(model, settings, targets, bar)
        run.outcome.out = out
        run.outcome.inputs = len(items)
        try:
            for item in items:
                if item.problem:
                    run.skip(item, item.problem)
                else:
                    run.add(item)
            run.flush()
        except KeyboardInterrupt:
            written = len(run.outcome.written)
            log.warning("interrupted: %d of %d images colorized into %s, kept", written,
                        len(items), out)  # fmt: skip
            raise
    run.outcome.seconds = time.perf_counter() - start
    return run.outcome
