"""Detecting objects in photographs on disk with a saved detector, each at its full size:
``detections.json`` in COCO's results format (``image_id``, ``category_id``, ``bbox`` as x, y,
width, height in the photograph's own pixels, ``score``), ``images.json`` naming the images and
categories those ids mean, and each photograph with its boxes drawn (NAME.png). Bad files are
skipped with one line each and counted; no output replaces an input or another output."""

from __future__ import annotations

import time
from pathlib import Path
from typing import ClassVar

import numpy as np
import torch
from PIL import Image, ImageDraw

from ..atomic import atomic_write
from ..data.decode import decode_file
from ..data.errors import BadImage
from ..device import autocast
from ..inference.inputs import FilesOutcome, find_inputs, output_paths
from ..jsontext import json_text
from ..models import SplitBrain
from ..outputs import keep_earlier
from ..progress import track
from .pictures import SHOWN_SCORE

DETECTIONS, IMAGES = "detections.json", "images.json"
#: Colours of the categories in drawn pictures (matplotlib's ``tab10``, as the report's).
COLOURS = (
    (31, 119, 180), (255, 127, 14), (44, 160, 44), (214, 39, 40), (148, 103, 189),
    (140, 86, 75), (227, 119, 194), (127, 127, 127), (188, 189, 34), (23, 190, 207),
)  # fmt: skip


@torch.no_grad()
def detect_photo(
    model: SplitBrain, rgb: np.ndarray, precision: str = "32-true"
) -> dict[str, np.ndarray]:
    """(H, W, 3) uint8 -> ``boxes`` (N, 4) x1, y1, x2, y2 in its own pixels, ``labels`` (N,)
    and ``scores`` (N,), by ``SplitBrain.detect``."""
    device = next(model.parameters()).device
    image = torch.tensor(rgb, dtype=torch.uint8).permute(2, 0, 1)  # a copy: rgb may be read-only
    with autocast(device, precision):
        found = model.detect([(image.float() / 255).to(device)])[0]
    return {k: v.float().cpu().numpy() if k != "labels" else v.cpu().numpy()
            for k, v in found.items()}  # fmt: skip


def drawn(rgb: np.ndarray, found: dict[str, np.ndarray], classes: list[str]) -> Image.Image:
    """The photograph with the boxes scoring ``SHOWN_SCORE`` or more, named and scored."""
    picture = Image.fromarray(rgb)
    pen = ImageDraw.Draw(picture)
    line = max(2, round(min(rgb.shape[:2]) / 200))
    for box, label, score in zip(found["boxes"], found["labels"], found["scores"], strict=True):
        if score < SHOWN_SCORE:
            continue
        colour = COLOURS[(int(label) - 1) % len(COLOURS)]
        x1, y1, x2, y2 = (float(v) for v in box)
        pen.rectangle((x1, y1, x2, y2), outline=colour, width=line)
        text = f"{classes[int(label) - 1]} {score:.2f}"
        left, top, right, bottom = pen.textbbox((x1, y1), text)
        pen.rectangle((left, top - (bottom - top), right, y1), fill=colour)
        pen.text((x1, top - (bottom - top)), text, fill=(255, 255, 255))
    return picture


class DetectOutcome(FilesOutcome):
    """What a detection over files wrote and skipped."""

    verb: ClassVar[str] = "detected objects in"


def detect_files(
    model: SplitBrain,
    arguments: list[str],
    out: str | Path,
    overwrite: bool = False,
    precision: str = "32-true",
    progress: bool = True,
) -> DetectOutcome:
    """Detect objects in every image the arguments name, into ``out`` (see the module); an
    ``out`` holding earlier results is kept and a folder beside it used (``overwrite``
    replaces them)."""
    if model.config.detector is None:
        raise ValueError("this network has no detector; splitbrain detect trains one")
    classes = list(model.config.detector[0])
    start = time.perf_counter()
    asked = Path(out)
    items = find_inputs(arguments, outside=[asked])

    def holds(folder: Path) -> bool:
        return (folder / DETECTIONS).exists()

    out = keep_earlier(asked, overwrite, holds, "detection of these inputs")
    targets = output_paths(items, out, ".png", "picture", None, [out / DETECTIONS, out / IMAGES])
    outcome = DetectOutcome(out=out, inputs=len(items))
    images, results = [], []
    with track(total=len(items), desc="detecting", unit="img", enabled=progress) as bar:
        for item in items:
            try:
                if item.problem:
                    raise BadImage(str(item.path), item.problem)
                rgb, _ = decode_file(str(item.path))
                found = detect_photo(model, rgb, precision)
                target = targets[item]
                picture = drawn(rgb, found, classes)
                atomic_write(target, lambda tmp, p=picture: p.save(tmp, "PNG"))
                outcome.written.append(target)
                image_id = len(images) + 1
                height, width = rgb.shape[:2]
                images.append({"id": image_id, "file_name": str(item.name), "width": width,
                               "height": height})  # fmt: skip
                for (x1, y1, x2, y2), label, score in zip(
                    found["boxes"], found["labels"], found["scores"], strict=True
                ):
                    results.append({
                        "image_id": image_id, "category_id": int(label),
                        "bbox": [round(float(v), 2) for v in (x1, y1, x2 - x1, y2 - y1)],
                        "score": round(float(score), 4),
                    })  # fmt: skip
            except BadImage as bad:
                outcome.skip(bad.path, bad.reason, bad.detail)
            except OSError as error:
                outcome.skip(item.path, "unwritable output", error.strerror or str(error))
            bar.update()
    if images:
        categories = [{"id": k + 1, "name": name} for k, name in enumerate(classes)]
        listing = json_text({"images": images, "categories": categories}, indent=1)
        atomic_write(out / IMAGES, lambda tmp: Path(tmp).write_text(listing))
        atomic_write(out / DETECTIONS, lambda tmp: Path(tmp).write_text(json_text(results)))
    outcome.seconds = time.perf_counter() - start
    return outcome
