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

import functools
import logging
import os
import re
import zlib
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path

import numpy as np
from PIL import Image

from .base import ImageSource, plural
from .decode import decode_file, orient
from .errors import BadImage, DatasetError
from .folder import is_image
from .voc import VOC_CLASSES, image_set

log = logging.getLogger("splitbrain.data")

#: Formats whose compression changes pixel values: a mask in one holds noise, not classes.
LOSSY_FORMATS = ("JPEG", "MPO")
#: How a mask lines up with a photograph that carries an EXIF orientation.
ORIENTATION_RULE = (
    "a mask labels its photograph's stored pixels, at their size; where the photograph has an "
    "EXIF orientation, the mask is turned with it, so the pair is upright and lines up"
)
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


def mask_values(path: str, image: str | None = None) -> np.ndarray:
    """(H, W) uint8 values of the mask file ``path``, refused (``BadImage``) when they cannot
    be class indices (a lossy format, colour, values over 255) or, given its ``image``, when
    its size is not the photograph's stored size; turned as the photograph's EXIF orientation
    turns it (``ORIENTATION_RULE``)."""
    try:
        with Image.open(path) as opened:
            if opened.format in LOSSY_FORMATS:
                detail = (
                    f"{path} is {opened.format}, whose compression changes pixel values; "
                    "save masks as PNG"
                )
                raise BadImage(path, "lossy mask", detail)
            if opened.mode not in ("1", "L", "P", "I;16", "I"):
                detail = f"{path} is mode {opened.mode}, not class indices"
                raise BadImage(path, "bad mask value", detail)
            orientation = 1
            if image is not None:
                stored, orientation = _stored_size(image)
                if opened.size != stored:
                    raise BadImage(
                        path,
                        "mask size differs",
                        _size_detail(path, opened.size, stored, orientation),
                    )
            values = np.array(orient(opened, orientation))
    except OSError as error:
        raise BadImage(path, "corrupt", str(error).splitlines()[0]) from None
    if values.max(initial=0) > IGNORE:  # 16-bit masks may hold classes 0-255 only
        detail = f"{path} holds {int(values.max())}; class values are 0-{IGNORE}"
        raise BadImage(path, "bad mask value", detail)
    return values.astype(np.uint8)


def _stored_size(image: str) -> tuple[tuple[int, int], int]:
    """The (width, height) of ``image``'s stored pixels and its EXIF orientation."""
    try:
        with Image.open(image) as opened:
            return opened.size, int(opened.getexif().get(0x0112, 1))
    except Exception as error:  # Pillow parses untrusted bytes; decoding it names the problem
        raise BadImage(image, "corrupt", str(error).splitlines()[0]) from None


def _size_detail(
    path: str, size: tuple[int, int], stored: tuple[int, int], orientation: int
) -> str:
    (w, h), (sw, sh) = size, stored
    shown = f"{path} is {w}x{h}, its photograph {sw}x{sh} (width x height)"
    if orientation in (5, 6, 7, 8) and size == (sh, sw):
        shown += (
            f"; the photograph is shown turned to {sh}x{sw} by its EXIF orientation: a mask "
            "labels the stored pixels"
        )
    return shown


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
        mask = self.read_mask(i, check_size=True)
        return np.concatenate([rgb, mask[..., None]], axis=2), note

    def read_mask(self, i: int, check_size: bool = False) -> np.ndarray:
        """(H, W) uint8 class indices of item ``i`` (``IGNORE`` where unlabelled), checked
        against the classes and, with ``check_size``, against its photograph, and turned as
        the photograph's EXIF orientation turns it (``ORIENTATION_RULE``)."""
        path = self.masks[i]
        if path is None:
            raise BadImage(self.images[i], "no mask", f"nothing with its stem in {self.spec}")
        image = self.images[i] if check_size else None
        mask = mask_values(path, image)
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
        super().__init__(pairs.path, f"{pairs.split}, photographs alone", len(pairs))
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


def _listed_classes(root: Path) -> list[str] | None:
    listing = root / "classes.txt"
    if not listing.is_file():
        return None
    return [line.strip() for line in listing.read_text().splitlines() if line.strip()]


def _counted_classes(root: Path, pairs: list[tuple[str, str | None]]) -> list[str]:
    """0..the largest value in the masks that can be used (one list for every split: a split
    may lack the last class); a mask refused when read decides nothing. Gaps are warned about:
    a value no other mask has is more often a stray pixel than a class."""
    seen: set[int] = set()
    usable = 0
    for image, mask in pairs:
        if mask is None:
            continue
        try:
            values = np.unique(mask_values(mask, image))
        except BadImage:
            continue  # named and counted when the pair is read
        usable += 1
        seen.update(int(v) for v in values if v != IGNORE)
    top = max(seen, default=-1) + 1
    log.info(
        "masks:%s has no classes.txt: classes 0-%d, from the values in its %s",
        root, top - 1, plural(usable, "usable mask"),
    )  # fmt: skip
    missing = top - len(seen)
    if missing:
        shown = ", ".join(map(str, sorted(seen)[:20])) + (", ..." if len(seen) > 20 else "")
        log.warning(
            "masks:%s: %s of classes 0-%d %s no pixel (values seen: %s); a class without "
            "pixels is often a stray value's doing: list the real classes in classes.txt",
            root, missing, top - 1, "has" if missing == 1 else "have", shown,
        )  # fmt: skip
    return [str(k) for k in range(top)]


#: A folder without split subfolders holds out this fraction of its frames for scoring.
FLAT_HELD_OUT = 5  # 1 frame in 5


def _flat_held_out(images: list[str]) -> set[str]:
    """The frames of a folder without splits that are scored, not trained on: those whose
    file name hashes to 0 modulo ``FLAT_HELD_OUT`` (1 in 5, the same on every machine and run,
    and a frame keeps its side when frames are added), or, in a folder too small for the hash
    to choose any or to leave any out, the fifth whose names hash lowest."""
    if len(images) < 2:
        raise DatasetError(
            f"{images[0] if images else 'the folder'}: a folder without train/ and val/ "
            "subfolders needs 2 frames or more, to train on some and score the others"
        )
    hashes = {image: zlib.crc32(Path(image).stem.encode()) for image in images}
    held = {image for image, value in hashes.items() if value % FLAT_HELD_OUT == 0}
    if 0 < len(held) < len(images):
        return held
    ranked = sorted(images, key=lambda i: (hashes[i], i))
    return set(ranked[: max(1, round(len(images) / FLAT_HELD_OUT))])


class _GenericFolder:
    """A ``masks:`` folder: its frames by split, and its classes decided once."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.flat = not any((root / s / "images").is_dir() for s in SPLITS)
        if self.flat and not (root / "images").is_dir():
            raise DatasetError(
                f"masks:{root}: no images/ folder (nor train/images/, val/images/); expected "
                "images/ and masks/ with matching file stems"
            )
        folders = {"all": root} if self.flat else {s: root / s for s in SPLITS}
        self.pairs = {
            split: _pairs(folder / "images", folder / "masks")
            for split, folder in folders.items()
            if (folder / "images").is_dir()
        }
        every = [
            p for images, masks in self.pairs.values() for p in zip(images, masks, strict=True)
        ]
        self.classes = _listed_classes(root) or _counted_classes(root, every)
        if self.flat:
            images, masks = self.pairs["all"]
            held = _flat_held_out(images)
            for split, scored in (("train", False), (FLAT_SPLIT, True)):
                kept = [k for k, image in enumerate(images) if (image in held) == scored]
                self.pairs[split] = ([images[k] for k in kept], [masks[k] for k in kept])

    def source(self, split: str) -> MaskSource:
        if self.flat and split in ("val", "test"):
            split = FLAT_SPLIT
        if split not in self.pairs:
            present = [s for s in self.pairs if s != "all"]
            raise DatasetError(
                f"masks:{self.root}: no {split}/ folder (it has {', '.join(present)})"
            )
        images, masks = self.pairs[split]
        if self.flat and split == FLAT_SPLIT:
            log.info(
                "masks:%s has no train/ and val/ subfolders: %s of its %s (1 in %d, chosen by "
                "a hash of the file name, the same every run) are held out and scored, the "
                "others train; for a split by source, make train/ and val/ subfolders or hold "
                "out named frames",
                self.root, plural(len(images), "frame"), f"{len(self.pairs['all'][0]):,}",
                FLAT_HELD_OUT,
            )  # fmt: skip
        return MaskSource(
            "masks", str(self.root), split, images, masks, self.classes,
            voc_palette(len(self.classes)),
        )  # fmt: skip


#: The split name of the frames a folder without splits holds out (``_flat_held_out``).
FLAT_SPLIT = f"held out (1 in {FLAT_HELD_OUT} by name)"


def _generic(root: Path, split: str) -> MaskSource:
    return _GenericFolder(root).source(split)


def is_mask_spec(spec: str) -> bool:
    """Whether ``spec`` names segmentation data (``camvid:``, ``voc:`` or ``masks:``)."""
    return bool(_SPEC.match(spec))


def spec_root(spec: str, pattern: re.Pattern, expected: str) -> tuple[str, Path]:
    """(format, folder) of a ``FORMAT:DIR`` spec that ``pattern`` matches; a DatasetError
    saying what was ``expected`` otherwise, or naming a folder that is not there."""
    match = pattern.match(spec)
    if not match:
        raise DatasetError(f"{spec}: {expected}")
    fmt, path = match.groups()
    root = Path(path).expanduser().resolve()
    if not root.is_dir():
        raise DatasetError(f"{fmt}:{root}: no such directory")
    return fmt, root


def _format_and_root(spec: str) -> tuple[str, Path]:
    return spec_root(
        spec, _SPEC, "segmentation data is camvid:DIR, voc:DIR or masks:DIR (images/ and masks/)"
    )


def _opener(fmt: str, root: Path) -> Callable[[str], MaskSource]:
    """A function from a split name to its frames, for the folder ``fmt:root`` read once."""
    if fmt == "masks":
        return _GenericFolder(root).source
    return functools.partial({"camvid": _camvid, "voc": _voc}[fmt], root)


def open_masks(spec: str, split: str = "train") -> MaskSource:
    """Open ``camvid:DIR``, ``voc:DIR`` or ``masks:DIR`` at ``split`` (train, val or test; a
    ``masks:`` folder without split subfolders: its held-out frames for val and test, and
    ``all``)."""
    return _opener(*_format_and_root(spec))(split)


def _splits(fmt: str, root: Path) -> list[str]:
    """The splits that ``fmt:root`` has (a ``masks:`` folder without split folders: "all")."""
    if fmt == "camvid":
        return [s for s in SPLITS if (root / s).is_dir()]
    if fmt == "voc":
        return [s for s in SPLITS if (root / "ImageSets" / "Segmentation" / f"{s}.txt").is_file()]
    return [s for s in SPLITS if (root / s / "images").is_dir()] or ["all"]


def segmentation_pairs(
    data: str,
    test_data: str | None = None,
    test_split: str = "val",
    hold_out: Sequence[str] | None = None,
) -> tuple[MaskSource, MaskSource]:
    """(training frames, scored frames) of ``data``: its train split and ``test_split`` (a
    folder without splits: the frames it holds out), or, with ``test_data``, all of another
    folder without splits or its ``test_split``, or, with ``hold_out``, every frame of every
    split parted by name (``held_out``). Each folder is read once."""
    fmt, root = _format_and_root(data)
    opener = _opener(fmt, root)
    if hold_out:
        return held_out(fmt, root, opener, hold_out)
    if test_data is None or _format_and_root(test_data) == (fmt, root):
        return opener("train"), opener(test_split)
    test_fmt, test_root = _format_and_root(test_data)
    flat = test_fmt == "masks" and _splits(test_fmt, test_root) == ["all"]
    return opener("train"), _opener(test_fmt, test_root)("all" if flat else test_split)


def in_group(stem: str, names: Iterable[str]) -> bool:
    """Whether a frame named ``stem`` is one of ``names``, or begins with one followed by a
    separator: CamVid's ``0016E5_07959`` belongs to ``0016E5`` (its sequence), not ``0016``."""
    return any(
        stem == name or (stem.startswith(name) and not stem[len(name)].isalnum()) for name in names
    )


def held_out(
    fmt: str, root: Path, opener: Callable[[str], MaskSource], names: Sequence[str]
) -> tuple[MaskSource, MaskSource]:
    """(train, test): every frame of every split of ``fmt:root``, parted by name: the frames
    of ``names`` (``in_group``) are scored, all the others train. A split by source (a street,
    a drive, a camera) says how features carry to scenes the heads never saw, where a split
    whose frames neighbour the training frames rewards remembering them."""
    pairs: dict[str, str | None] = {}
    sources = [opener(split) for split in _splits(fmt, root)]
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
