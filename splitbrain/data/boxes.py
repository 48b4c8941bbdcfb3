"""Photographs with object boxes, for detection: ``coco:DIR`` (COCO JSON annotations) and
``voc:DIR`` (a VOCdevkit year folder's ``Annotations/*.xml``).

An item is the photograph, (H, W, 3) uint8, as every image source gives it, so the scan, the
bad-file log and the 1% rule serve boxes unchanged; ``boxes(i)`` gives its objects. Boxes are
(x1, y1, x2, y2) in pixels of the upright photograph, labels 1..len(classes) (0 is the
background, as torchvision's detectors number them), and ``ignored`` marks COCO's crowd regions
and VOC's difficult objects, which the metrics count neither as a hit nor as a miss. An image
with no boxes is a valid negative. A pair that cannot be used is a ``BadImage`` naming the file:
an image that is missing or unreadable, an annotation that is missing or malformed, a box
outside the image or of zero area, an unknown category.

Orientation, as for masks (``masks.ORIENTATION_RULE``): boxes label the photograph's stored
pixels; where it has an EXIF orientation, they are turned with it.

    source = open_boxes("coco:../shared/data/camvid", "train")   # boxes/train.json
    rgb = source[0]; objects = source.boxes(0)
"""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from pathlib import Path

import numpy as np
from PIL import Image

from .base import ImageSource, plural
from .decode import decode_file
from .errors import BadImage, DatasetError
from .masks import in_group, spec_root
from .objects import Objects
from .voc import VOC_CLASSES, image_set, read_objects

FORMATS = ("coco", "voc")
SPLITS = ("train", "val", "test")
_SPEC = re.compile(rf"^({'|'.join(FORMATS)}):(.*)$")


class BoxSource(ImageSource):
    """Photographs and their objects; item i is the upright (H, W, 3) uint8 photograph.

    ``objects[i]``: the objects of image i on its stored pixels, or the BadImage its
    annotation raised when read (a missing or malformed annotation, an unknown category)."""

    decodes_files = True

    def __init__(
        self,
        fmt: str,
        path: str,
        split: str,
        images: list[str],
        objects: list[Objects | BadImage],
        classes: Sequence[str],
    ) -> None:
        if not images:
            raise DatasetError(f"{fmt}:{path}: no images in split {split!r}")
        super().__init__(path, split, len(images), None, list(classes))
        self.format = fmt
        self.images, self.objects = images, objects

    @property
    def num_classes(self) -> int:
        return len(self.classes)

    def name(self, i: int) -> str:
        return self.images[self._index(i)]

    def _read(self, i: int, min_side: int | None = None) -> tuple[np.ndarray, str | None]:
        self._objects(i)  # a bad annotation is the pair's problem before any decoding
        rgb, note = decode_file(self.images[i], min_side)
        self.boxes(i)
        return rgb, note

    def _objects(self, i: int) -> Objects:
        found = self.objects[i]
        if isinstance(found, BadImage):
            raise found
        return found

    def boxes(self, i: int) -> Objects:
        """The objects of item ``i`` on the upright photograph, checked against its size."""
        i = self._index(i)
        objects = self._objects(i)
        (width, height), orientation = self._stored(i)
        checked = objects.checked(self.images[i], width, height)
        return checked.turned(orientation, width, height)

    def size(self, i: int) -> tuple[int, int]:
        """The (width, height) of item ``i``'s upright photograph, from its header."""
        (width, height), orientation = self._stored(self._index(i))
        return (height, width) if orientation in (5, 6, 7, 8) else (width, height)

    def _stored(self, i: int) -> tuple[tuple[int, int], int]:
        path = self.images[i]
        try:
            with Image.open(path) as image:
                return image.size, int(image.getexif().get(0x0112, 1))
        except Exception as error:  # Pillow parses untrusted bytes; decoding names it
            raise BadImage(path, "corrupt", str(error).splitlines()[0]) from None

    def photos(self) -> BoxSource:
        """The photographs alone: the items already are."""
        return self

    def subset(self, count: int | None) -> BoxSource:
        """``count`` images evenly spread over this source (all of them when None or more)."""
        if count is None or count >= len(self):
            return self
        keep = np.unique(np.linspace(0, len(self) - 1, count).round().astype(int))
        return self._part([int(k) for k in keep], self.split)

    def _part(self, keep: list[int], split: str) -> BoxSource:
        return BoxSource(
            self.format, self.path, split, [self.images[k] for k in keep],
            [self.objects[k] for k in keep], self.classes,
        )  # fmt: skip

    def describe(self) -> str:
        usable = [o for o in self.objects if isinstance(o, Objects)]
        counted = sum(int((~o.ignored).sum()) for o in usable)
        return f"{super().describe()}, {plural(counted, 'object')}"


# ------------------------------------------------------------------------------ COCO


def _coco_file(root: Path, split: str) -> Path:
    candidates = [
        root / "boxes" / f"{split}.json",
        root / "annotations" / f"{split}.json",
        *sorted((root / "annotations").glob(f"instances_{split}*.json")),
    ]
    found = next((c for c in candidates if c.is_file()), None)
    if found is None:
        raise DatasetError(
            f"coco:{root}: no annotations for split {split!r}; expected boxes/{split}.json, "
            f"annotations/{split}.json or annotations/instances_{split}*.json"
        )
    return found


def _json(path: Path) -> dict:
    try:
        data = json.loads(path.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as error:
        raise DatasetError(f"{path}: not a COCO annotation file ({error})") from None
    missing = [k for k in ("images", "annotations", "categories") if k not in data]
    if not isinstance(data, dict) or missing:
        raise DatasetError(f"{path}: not a COCO annotation file (no {', '.join(missing)})")
    return data


def _image_folder(root: Path, annotations: Path, first: str | None) -> Path:
    """Where ``file_name`` is relative to: ``root`` (``train/a.jpg`` under the dataset's
    folder), else the folder named as the annotation file (COCO's ``train2017/``)."""
    named = root / annotations.stem.removeprefix("instances_")
    if first is None or (root / first).is_file() or not (named / first).is_file():
        return root
    return named


def _coco(root: Path, split: str) -> BoxSource:
    path = _coco_file(root, split)
    data = _json(path)
    try:
        categories = sorted((int(c["id"]), str(c["name"])) for c in data["categories"])
        label_of = {cid: k + 1 for k, (cid, _) in enumerate(categories)}
        records = {int(im["id"]): str(im["file_name"]) for im in data["images"]}
        annotations = [
            (int(a["image_id"]), int(a["category_id"]), [float(v) for v in a["bbox"]],
             bool(a.get("iscrowd", 0)))
            for a in data["annotations"]
        ]  # fmt: skip
    except (KeyError, TypeError, ValueError) as error:
        raise DatasetError(f"{path}: not a COCO annotation file ({error!r} malformed)") from None
    folder = _image_folder(root, path, next(iter(records.values()), None))
    per_image: dict[int, list] = {image: [] for image in records}
    unknown: dict[int, BadImage] = {}
    for image, category, (x, y, w, h), crowd in annotations:
        if image not in records:
            continue  # an annotation of no listed image: nothing to score it on
        if category not in label_of:
            detail = f"{path.name}: category {category} is not one of its categories"
            unknown.setdefault(image, BadImage(str(folder / records[image]), "unknown category",
                                               detail))  # fmt: skip
            continue
        per_image[image].append(((x, y, x + w, y + h), label_of[category], crowd))
    images, objects = [], []
    for image, name in records.items():
        images.append(str(folder / name))
        found = per_image[image]
        objects.append(unknown.get(image) or Objects.of(found))
    return BoxSource("coco", str(root), split, images, objects, [n for _, n in categories])


# ------------------------------------------------------------------------------- VOC


def _voc(root: Path, split: str) -> BoxSource:
    ids = image_set(root, "Main", split)
    images = [str(root / "JPEGImages" / f"{i}.jpg") for i in ids]
    objects: list[Objects | BadImage] = []
    for image_id, image in zip(ids, images, strict=True):
        try:
            objects.append(read_objects(root / "Annotations" / f"{image_id}.xml"))
        except BadImage as bad:
            objects.append(BadImage(image, bad.reason, bad.detail))
    return BoxSource("voc", str(root), split, images, objects, VOC_CLASSES)


# ----------------------------------------------------------------------------- opening


def is_box_spec(spec: str) -> bool:
    """Whether ``spec`` names detection data (``coco:`` or ``voc:``)."""
    return bool(_SPEC.match(spec))


def _format_and_root(spec: str) -> tuple[str, Path]:
    return spec_root(
        spec, _SPEC,
        "detection data is coco:DIR (COCO JSON annotations) or voc:DIR (a VOCdevkit year folder)",
    )  # fmt: skip


def open_boxes(spec: str, split: str = "train") -> BoxSource:
    """Open ``coco:DIR`` or ``voc:DIR`` at ``split`` (train, val or test)."""
    fmt, root = _format_and_root(spec)
    return {"coco": _coco, "voc": _voc}[fmt](root, split)


def _splits(fmt: str, root: Path) -> list[str]:
    if fmt == "voc":
        return [s for s in SPLITS if (root / "ImageSets" / "Main" / f"{s}.txt").is_file()]
    found = []
    for split in SPLITS:
        try:
            _coco_file(root, split)
        except DatasetError:
            continue
        found.append(split)
    return found


def detection_pairs(
    data: str,
    test_data: str | None = None,
    test_split: str = "val",
    hold_out: Sequence[str] | None = None,
) -> tuple[BoxSource, BoxSource]:
    """(training images, scored images) of ``data``: its train split and ``test_split`` (or
    ``test_data``'s), or, with ``hold_out``, every image of every split parted by name as
    ``masks.in_group`` parts frames: a split by source (a street, a drive)."""
    if not hold_out:
        return open_boxes(data, "train"), open_boxes(test_data or data, test_split)
    fmt, root = _format_and_root(data)
    sources = [open_boxes(data, split) for split in _splits(fmt, root)]
    seen: dict[str, tuple[BoxSource, int]] = {}
    for source in sources:
        for k, image in enumerate(source.images):
            seen.setdefault(image, (source, k))
    held = [image for image in seen if in_group(Path(image).stem, hold_out)]
    kept = [image for image in seen if image not in set(held)]
    listed = ", ".join(hold_out[:5]) + (f" and {len(hold_out) - 5:,} more" if len(hold_out) > 5
                                        else "")  # fmt: skip
    if not held or not kept:
        raise DatasetError(
            f"{fmt}:{root}: {'no image' if not held else 'every image'} is one of {listed} "
            f"({len(seen):,} images): hold out some images, not none nor all"
        )

    def part(images: list[str], split: str) -> BoxSource:
        objects = [seen[i][0].objects[seen[i][1]] for i in images]
        return BoxSource(fmt, str(root), split, images, objects, sources[0].classes)

    return part(kept, f"all but {listed}"), part(held, f"held out: {listed}")
