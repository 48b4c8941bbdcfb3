"""Photographs with a class for every pixel, for semantic segmentation: ``camvid:DIR`` (the
SegNet layout), ``voc:DIR`` (a VOCdevkit year folder) and ``masks:DIR`` (any images with index
masks).

An item is one (H, W, 4) uint8 array: the RGB photograph and its mask as a fourth channel, so
the scan, the bad-file log, the 1% rule and the loaders of photographs serve masks unchanged,
and one resize and crop moves both (the mask by nearest pixel, ``data.transforms``). Mask values
are class indices; pixels that no metric counts (CamVid's void, VOC's 255 borders) are
``IGNORE``. A pair that cannot be used is a ``BadImage`` naming the file: a missing mask, a mask
whose size differs from its image, a value that is neither a class nor the ignore label.
"""

from __future__ import annotations

import logging
import os
import re
from collections.abc import Iterable, Sequence
from pathlib import Path

import numpy as np
from PIL import Image

from .base import ImageSource
from .decode import decode_file
from .errors import BadImage, DatasetError
from .folder import is_image
from .voc import VOC_CLASSES, image_set

log = logging.getLogger("splitbrain.data")

#: The mask value of pixels that are left out of the loss and of every metric.
IGNORE = 255
FORMATS = ("camvid", "voc", "masks")
SPLITS = ("train", "val", "test")
_SPEC = re.compile(rf"^({'|'.join(FORMATS)}):(.*)$")

CAMVID_CLASSES = (
    "Sky", "Building", "Pole", "Road", "Pavement", "Tree", "SignSymbol", "Fence", "Car",
    "Pedestrian", "Bicyclist",
)  # fmt: skip
#: The colours of the SegNet tutorial's CamVid pictures, class by class.
CAMVID_PALETTE = (
    (128, 128, 128), (128, 0, 0), (192, 192, 128), (128, 64, 128), (60, 40, 222), (128, 128, 0),
    (192, 128, 128), (64, 64, 128), (64, 0, 128), (64, 64, 0), (0, 128, 192),
)  # fmt: skip
CAMVID_VOID = 11


def voc_palette(count: int = 256) -> np.ndarray:
    """(count, 3) uint8: VOC's colour map (the bits of the index spread over R, G and B), the
    colours of its ``SegmentationClass`` PNGs; distinct for any number of classes."""
    palette = np.zeros((count, 3), dtype=np.uint8)
    for index in range(count):
        value, colour = index, [0, 0, 0]
        for shift in range(7, -1, -1):
            for channel in range(3):
                colour[channel] |= ((value >> channel) & 1) << shift
            value >>= 3
        palette[index] = colour
    return palette


class MaskSource(ImageSource):
    """Image and mask files in pairs; item i is (H, W, 4) uint8, RGB then the class index.

    ``masks[i]`` is None for an image without its mask (a BadImage when read). ``void``: a
    mask value that means "unlabelled" in this dataset, read as ``IGNORE``. ``palette``: the
    dataset's colour of each class, for pictures."""

    decodes_files = True
    num_channels = 4

    def __init__(
        self,
        fmt: str,
        path: str,
        split: str,
        images: list[str],
        masks: list[str | None],
        classes: list[str],
        palette: np.ndarray,
        void: int | None = None,
    ) -> None:
        if not images:
            raise DatasetError(f"{fmt}:{path}: no images in split {split!r}")
        if not any(masks):
            raise DatasetError(
                f"{fmt}:{path}: no image of split {split!r} has a mask (masks are found by "
                "the image's file stem)"
            )
        super().__init__(path, split, len(images), None, list(classes))
        self.format = fmt
        self.images, self.masks = images, masks
        self.palette = np.asarray(palette, dtype=np.uint8)
        self.void = void

    @property
    def num_classes(self) -> int:
        return len(self.classes)

    def name(self, i: int) -> str:
        return self.images[self._index(i)]

    def _read(self, i: int, min_side: int | None = None) -> tuple[np.ndarray, str | None]:
        # decoded at full size whatever ``min_side`` says: the mask must match it pixel for pixel
        rgb, note = decode_file(self.images[i])
        mask = self.read_mask(i, rgb.shape[:2])
        return np.concatenate([rgb, mask[..., None]], axis=2), note

    def read_mask(self, i: int, size: tuple[int, int] | None = None) -> np.ndarray:
        """(H, W) uint8 class indices of item ``i`` (``IGNORE`` where unlabelled), checked
        against the classes and, when given, the image's (height, width)."""
        path = self.masks[i]
        if path is None:
            raise BadImage(self.images[i], "no mask", f"nothing with its stem in {self.spec}")
        try:
            with Image.open(path) as image:
                if image.mode not in ("1", "L", "P", "I;16", "I"):
                    detail = f"{path} is mode {image.mode}, not class indices"
                    raise BadImage(path, "bad mask value", detail)
                values = np.array(image)
        except OSError as error:
            raise BadImage(path, "corrupt", str(error).splitlines()[0]) from None
        if values.max(initial=0) > IGNORE:  # 16-bit masks may hold classes 0-255 only
            detail = f"{path} holds {int(values.max())}; classes are 0-{self.num_classes - 1}"
            raise BadImage(path, "bad mask value", detail)
        mask = values.astype(np.uint8)
        if size is not None and mask.shape != tuple(size):
            detail = f"{path} is {mask.shape[0]}x{mask.shape[1]}, the image {size[0]}x{size[1]}"
            raise BadImage(path, "mask size differs", detail)
        if self.void is not None:
            mask[mask == self.void] = IGNORE
        wrong = (mask >= self.num_classes) & (mask != IGNORE)
        if wrong.any():
            value = int(mask[wrong][0])
            detail = f"{path} holds {value}; classes are 0-{self.num_classes - 1}, {IGNORE} ignored"
            raise BadImage(path, "bad mask value", detail)
        return mask

    def subset(self, count: int | None) -> MaskSource:
        """``count`` pairs evenly spread over this source (all of them when None or more)."""
        if count is None or count >= len(self):
            return self
        keep = np.unique(np.linspace(0, len(self) - 1, count).round().astype(int))
        return MaskSource(
            self.format, self.path, self.split, [self.images[k] for k in keep],
            [self.masks[k] for k in keep], self.classes, self.palette, self.void,
        )  # fmt: skip

    def photos(self) -> ImageSource:
        """The photographs alone, as a source of images (to initialise a baseline from)."""
        return _Photos(self)

    def describe(self) -> str:
        missing = sum(m is None for m in self.masks)
        without = f" ({missing:,} without a mask)" if missing else ""
        return f"{super().describe()}{without}"


class _Photos(ImageSource):
    """The photographs of a ``MaskSource``, without their masks."""

    decodes_files = True

    def __init__(self, pairs: MaskSource) -> None:
        super().__init__(pairs.path, pairs.split, len(pairs))
        self.format = pairs.format
        self.images = pairs.images

    def name(self, i: int) -> str:
        return self.images[self._index(i)]

    def _read(self, i: int, min_side: int | None = None) -> tuple[np.ndarray, str | None]:
        return decode_file(self.images[i], min_side)


def _by_stem(folder: Path) -> dict[str, str]:
    if not folder.is_dir():
        return {}
    return {Path(n).stem: str(folder / n) for n in sorted(os.listdir(folder)) if is_image(n)}


def _pairs(images: Path, masks: Path) -> tuple[list[str], list[str | None]]:
    """Every image of ``images`` and the file of ``masks`` with its stem (None: none)."""
    found = _by_stem(images)
    annotations = _by_stem(masks)
    return list(found.values()), [annotations.get(stem) for stem in found]


def _camvid(root: Path, split: str) -> MaskSource:
    if not (root / split).is_dir():
        present = [s for s in ("train", "val", "test") if (root / s).is_dir()]
        raise DatasetError(
            f"camvid:{root}: no {split}/ folder (it has {', '.join(present) or 'none'}); "
            "expected the SegNet layout: train/, trainannot/, val/, valannot/"
        )
    images, masks = _pairs(root / split, root / f"{split}annot")
    return MaskSource(
        "camvid", str(root), split, images, masks, CAMVID_CLASSES, CAMVID_PALETTE, CAMVID_VOID
    )


def _voc(root: Path, split: str) -> MaskSource:
    ids = image_set(root, "Segmentation", split)
    images = [str(root / "JPEGImages" / f"{i}.jpg") for i in ids]
    masks = [root / "SegmentationClass" / f"{i}.png" for i in ids]
    present = [str(m) if m.is_file() else None for m in masks]
    classes = ("background", *VOC_CLASSES)
    return MaskSource("voc", str(root), split, images, present, classes, voc_palette(len(classes)))


def _generic_classes(root: Path) -> list[str]:
    """``classes.txt`` (one name per line), else 0..the largest value in the masks of every
    split (one list for all of them: a split may lack the last class)."""
    listing = root / "classes.txt"
    if listing.is_file():
        return [line.strip() for line in listing.read_text().splitlines() if line.strip()]
    top = 0
    folders = [root / "masks", *sorted(root.glob("*/masks"))]
    for path in (str(f / n) for f in folders if f.is_dir() for n in sorted(os.listdir(f))):
        try:
            with Image.open(path) as image:
                values = np.unique(np.asarray(image))
        except OSError:
            continue  # named and counted when the pair is read
        values = values[values != IGNORE]
        top = max(top, int(values.max()) + 1 if len(values) else 0)
    log.info(
        "masks:%s has no classes.txt: classes 0-%d, from the values in its masks", root, top - 1
    )
    return [str(k) for k in range(top)]


def _generic(root: Path, split: str) -> MaskSource:
    folder = root / split if (root / split / "images").is_dir() else root
    if not (folder / "images").is_dir():
        raise DatasetError(
            f"masks:{root}: no images/ folder (nor {split}/images/); expected images/ and "
            "masks/ with matching file stems"
        )
    if folder == root and split != "train":
        log.warning("masks:%s has no split subfolders; using all of it as %r", root, split)
    images, masks = _pairs(folder / "images", folder / "masks")
    classes = _generic_classes(root)
    return MaskSource("masks", str(root), split, images, masks, classes, voc_palette(len(classes)))


def is_mask_spec(spec: str) -> bool:
    """Whether ``spec`` names segmentation data (``camvid:``, ``voc:`` or ``masks:``)."""
    return bool(_SPEC.match(spec))


def _format_and_root(spec: str) -> tuple[str, Path]:
    match = _SPEC.match(spec)
    if not match:
        raise DatasetError(
            f"{spec}: segmentation data is camvid:DIR, voc:DIR or masks:DIR (images/ and masks/)"
        )
    fmt, path = match.groups()
    root = Path(path).expanduser().resolve()
    if not root.is_dir():
        raise DatasetError(f"{fmt}:{root}: no such directory")
    return fmt, root


def open_masks(spec: str, split: str = "train") -> MaskSource:
    """Open ``camvid:DIR``, ``voc:DIR`` or ``masks:DIR`` at ``split`` (train, val or test)."""
    fmt, root = _format_and_root(spec)
    return {"camvid": _camvid, "voc": _voc, "masks": _generic}[fmt](root, split)


def _splits(fmt: str, root: Path) -> list[str]:
    """The splits that ``fmt:root`` has (a ``masks:`` folder without split folders: one)."""
    if fmt == "camvid":
        return [s for s in SPLITS if (root / s).is_dir()]
    if fmt == "voc":
        return [s for s in SPLITS if (root / "ImageSets" / "Segmentation" / f"{s}.txt").is_file()]
    return [s for s in SPLITS if (root / s / "images").is_dir()] or ["train"]


def in_group(stem: str, names: Iterable[str]) -> bool:
    """Whether a frame named ``stem`` is one of ``names``, or begins with one followed by a
    separator: CamVid's ``0016E5_07959`` belongs to ``0016E5`` (its sequence), not ``0016``."""
    return any(
        stem == name or (stem.startswith(name) and not stem[len(name)].isalnum()) for name in names
    )


def held_out(spec: str, names: Sequence[str]) -> tuple[MaskSource, MaskSource]:
    """(train, test): every frame of every split of ``spec``, parted by name: the frames of
    ``names`` (``in_group``) are scored, all the others train. A split by source (a street, a
    drive, a camera) says how features carry to scenes the heads never saw, where a split
    whose frames neighbour the training frames rewards remembering them."""
    fmt, root = _format_and_root(spec)
    pairs: dict[str, str | None] = {}
    sources = [open_masks(spec, split) for split in _splits(fmt, root)]
    for source in sources:
        for image, mask in zip(source.images, source.masks, strict=True):
            pairs.setdefault(image, mask)
    chosen = {image: in_group(Path(image).stem, names) for image in pairs}
    held = [image for image, scored in chosen.items() if scored]
    kept = [image for image, scored in chosen.items() if not scored]
    listed = ", ".join(names[:5]) + (f" and {len(names) - 5:,} more" if len(names) > 5 else "")
    if not held or not kept:
        groups = sorted({re.split(r"[^0-9A-Za-z]", Path(i).stem)[0] for i in pairs})
        shown = ", ".join(groups[:8]) + (", ..." if len(groups) > 8 else "")
        raise DatasetError(
            f"{fmt}:{root}: {'no frame' if not held else 'every frame'} is one of {listed} "
            f"({len(pairs):,} frames; their names begin with {shown}): hold out some frames, "
            "not none nor all"
        )
    source = sources[0]  # every split of a spec has the same classes

    def part(images: list[str], split: str) -> MaskSource:
        return MaskSource(
            fmt, str(root), split, images, [pairs[i] for i in images], source.classes,
            source.palette, source.void,
        )  # fmt: skip

    return part(kept, f"all but {listed}"), part(held, f"held out: {listed}")
