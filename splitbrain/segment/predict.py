"""Segmenting photographs on disk with a saved segmenter, each at its full size: the network
sees the photograph with its shorter side at the size it was trained at, its logits are
upsampled bilinearly to the photograph's own size, and the classes are written as a palette PNG
(the class index in each pixel, shown in the dataset's colours), with an overlay on request.
Bad files are skipped with one line each and counted; inputs are never overwritten."""

from __future__ import annotations

import time
from pathlib import Path
from typing import ClassVar

import numpy as np
import torch
from PIL import Image

from ..atomic import atomic_write
from ..data.decode import decode_file
from ..data.errors import BadImage
from ..data.masks import voc_palette
from ..device import autocast
from ..inference.inputs import FilesOutcome, companion, find_inputs, output_paths
from ..models import SplitBrain
from ..outputs import keep_earlier
from ..progress import track
from .pictures import colour_mask, overlay

OVERLAY = "-overlay.png"
#: Beside the masks: each class's value, name and colour.
CLASSES = "classes.txt"


def palette_of(model: SplitBrain) -> np.ndarray:
    """The class colours its weights file records, else VOC's colour map."""
    recorded = model.provenance.get("palette")
    classes = len(model.config.segmenter[2])
    return np.asarray(recorded, dtype=np.uint8) if recorded else voc_palette(classes)


@torch.no_grad()
def segment_photo(
    model: SplitBrain, rgb: np.ndarray, side: int | None = None, precision: str = "32-true"
) -> np.ndarray:
    """(H, W, 3) uint8 -> (H, W) uint8 class indices at the photograph's full size, by
    ``SplitBrain.segment`` (the network sees it with its shorter side at ``side``, default the
    one its segmenter was trained at)."""
    device = next(model.parameters()).device
    chw = torch.tensor(rgb, dtype=torch.uint8).permute(2, 0, 1)  # a copy: rgb may be read-only
    raw = (chw[None].float() / 255).to(device)
    with autocast(device, precision):
        logits = model.eval().segment(raw, side)
    return logits.argmax(1)[0].to(torch.uint8).cpu().numpy()


def class_listing(model: SplitBrain) -> str:
    """The classes of a segmenter's masks, a line each: the value in the mask, the name, the
    colour the PNG shows it in."""
    classes = model.config.segmenter[2]
    palette = palette_of(model)
    return "".join(
        f"{k}\t{name}\t#{bytes(int(v) for v in palette[k]).hex()}\n"
        for k, name in enumerate(classes)
    )


class SegmentOutcome(FilesOutcome):
    """What a segmentation of files wrote and skipped."""

    verb: ClassVar[str] = "segmented"


def _write_png(path: Path, image: Image.Image) -> None:
    atomic_write(path, lambda tmp: image.save(tmp, "PNG"))


def segment_files(
    model: SplitBrain,
    arguments: list[str],
    out: str | Path,
    resize: int | None = None,
    with_overlay: bool = False,
    overwrite: bool = False,
    precision: str = "32-true",
    progress: bool = True,
) -> SegmentOutcome:
    """Segment every image the arguments name into ``out`` as NAME.png (and NAME-overlay.png
    with ``with_overlay``), keeping a folder's tree, the network seeing each with its shorter
    side at ``resize`` (default: the segmenter's own); an ``out`` holding earlier results is
    kept and a folder beside it used (``--overwrite`` replaces them)."""
    if model.config.segmenter is None:
        raise ValueError("this network has no segmenter; splitbrain segment trains one")
    start = time.perf_counter()
    asked = Path(out)
    items = find_inputs(arguments, outside=[asked])
    endings = {OVERLAY: "overlay"} if with_overlay else {}

    def holds(folder: Path) -> bool:
        return any(t.exists() for t in output_paths(items, folder, ".png", "mask").values())

    out = keep_earlier(asked, overwrite, holds, "segmentation of these inputs")
    targets = output_paths(items, out, ".png", "mask", endings, [out / CLASSES])
    palette = palette_of(model)
    outcome = SegmentOutcome(out=out, inputs=len(items))
    with track(total=len(items), desc="segmenting", unit="img", enabled=progress) as bar:
        for item in items:
            try:
                if item.problem:
                    raise BadImage(str(item.path), item.problem)
                rgb, _ = decode_file(str(item.path))
                mask = segment_photo(model, rgb, resize, precision)
                picture = Image.fromarray(mask, "P")
                picture.putpalette(palette.reshape(-1).tolist())
                target = targets[item]
                _write_png(target, picture)
                outcome.written.append(target)
                if with_overlay:
                    blended = overlay(rgb, colour_mask(mask, palette))
                    _write_png(companion(target, OVERLAY), Image.fromarray(blended))
            except BadImage as bad:
                outcome.skip(bad.path, bad.reason, bad.detail)
            except OSError as error:
                outcome.skip(item.path, "unwritable output", error.strerror or str(error))
            bar.update()
    if outcome.written:
        atomic_write(out / CLASSES, lambda tmp: Path(tmp).write_text(class_listing(model)))
    outcome.seconds = time.perf_counter() - start
    return outcome
