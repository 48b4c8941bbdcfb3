"""PASCAL VOC year folders (``VOCdevkit/VOC2007``, ``VOC2012``): the layout and the class list
that VOC classification (``finetune --data voc:DIR``), segmentation (``segment --data voc:DIR``)
and detection (``detect --data voc:DIR``) share, an annotation's objects, and the
classification reader.

Annotations are parsed with the standard library's ElementTree (defusedxml is not a
dependency): VOC annotation files are plain data, and ElementTree fetches no external entities.
"""

from __future__ import annotations

import xml.etree.ElementTree as ET
from pathlib import Path

import numpy as np

from .base import ImageSource, SubsetSource
from .decode import decode_file, probe_file
from .errors import BadImage, DatasetError
from .objects import Objects

#: The 20 object classes, in VOC's order (segmentation masks add background as class 0).
VOC_CLASSES = (
    "aeroplane", "bicycle", "bird", "boat", "bottle", "bus", "car", "cat", "chair", "cow",
    "diningtable", "dog", "horse", "motorbike", "person", "pottedplant", "sheep", "sofa",
    "train", "tvmonitor",
)  # fmt: skip


def image_set(root: Path, task: str, split: str) -> list[str]:
    """The image ids of ``ImageSets/{task}/{split}.txt`` (task ``Main`` or ``Segmentation``),
    or a DatasetError naming the file that is missing."""
    listing = root / "ImageSets" / task / f"{split}.txt"
    if not listing.is_file():
        raise DatasetError(
            f"voc:{root}: no {listing.relative_to(root)}; expected a VOCdevkit year folder "
            "(JPEGImages/, ImageSets/, Annotations/ or SegmentationClass/)"
        )
    return [line.split()[0] for line in listing.read_text().splitlines() if line.strip()]


def _main_listing(root: Path, split: str) -> str:
    """The ``ImageSets/Main`` listing that holds ``split``.

    Where the test labels are public (VOC 2007: ``test.txt`` exists and its first image's
    annotation lists objects), ``train`` is ``trainval.txt`` and ``test`` is ``test.txt``, the
    protocol of the paper's PASCAL numbers. Where they are not (VOC 2012 keeps them private),
    ``train`` is ``train.txt`` and ``test`` is ``val.txt``. Any other name (``val``,
    ``trainval``) is read as it is.
    """
    if split not in ("train", "test"):
        return split
    held_out = _has_objects(root / "ImageSets" / "Main" / "test.txt", root)
    if split == "train":
        return "trainval" if held_out else "train"
    return "test" if held_out else "val"


def _has_objects(listing: Path, root: Path) -> bool:
    """Whether ``listing`` exists and its first image's annotation names an object: test
    labels are public."""
    if not listing.is_file():
        return False
    first = next((line.split()[0] for line in listing.read_text().splitlines() if line.strip()), "")
    try:
        return ET.parse(root / "Annotations" / f"{first}.xml").find("object") is not None
    except (OSError, ET.ParseError):
        return False


def read_objects(path: Path) -> Objects:
    """The objects of one ``Annotations/*.xml``: VOC's 1-based inclusive corners as 0-based
    pixel edges (x1 = xmin - 1, x2 = xmax), ``difficult`` ones ignored; a BadImage for a file
    that is missing or malformed or names an unknown class."""
    where = f"Annotations/{path.name}"
    try:
        nodes = ET.parse(path).getroot().findall("object")
    except FileNotFoundError:
        raise BadImage(str(path), "no annotation", f"{where} does not exist") from None
    except OSError as error:
        raise BadImage(str(path), "unreadable file", f"{where}: {error.strerror}") from None
    except ET.ParseError as error:
        raise BadImage(str(path), "malformed annotation", f"{where}: {error}") from None
    found = []
    for node in nodes:
        name = (node.findtext("name") or "").strip()
        if name not in VOC_CLASSES:
            raise BadImage(str(path), "unknown category", f"{where}: unknown class {name!r}")
        try:
            box = node.find("bndbox")
            xmin, ymin, xmax, ymax = (float(box.findtext(k)) for k in ("xmin", "ymin", "xmax",
                                                                       "ymax"))  # fmt: skip
        except (AttributeError, TypeError, ValueError):
            detail = f"{where}: an object {name!r} without a numeric bndbox"
            raise BadImage(str(path), "malformed annotation", detail) from None
        difficult = (node.findtext("difficult") or "0").strip() == "1"
        found.append(((xmin - 1, ymin - 1, xmax, ymax), VOC_CLASSES.index(name) + 1, difficult))
    return Objects.of(found)


def read_annotation(path: Path) -> np.ndarray:
    """The (20,) int64 classification labels of one ``Annotations/*.xml`` file (its objects,
    ``read_objects``): 1 where a class has an object not flagged difficult, -1 where all its
    objects are difficult (ignored, as VOC's devkit ignores them), 0 where it has none."""
    objects = read_objects(path)
    labels = np.zeros(len(VOC_CLASSES), dtype=np.int64)
    for label, difficult in zip(objects.labels - 1, objects.ignored, strict=True):
        if not difficult:
            labels[label] = 1
        elif labels[label] == 0:
            labels[label] = -1
    return labels


class VOCClassification(ImageSource):
    """The JPEGs an ``ImageSets/Main`` listing names, and ``targets``: their (N, 20) int64
    label matrix (1 present, 0 absent, -1 difficult only; see ``read_annotation``).

    Annotations are read when the source opens. An image whose annotation is missing or
    malformed keeps a row of -1 and raises its BadImage when read or checked, so the scan names
    it in one line, counts it with unreadable JPEGs under the 1% rule, and leaves it out.
    """

    format = "voc"
    decodes_files = True

    def __init__(self, path: str | Path, split: str = "train") -> None:
        root = Path(path).expanduser().resolve()
        if not root.is_dir():
            raise DatasetError(f"voc:{root}: no such directory")
        self.listing = _main_listing(root, split)
        ids = image_set(root, "Main", self.listing)
        if not ids:
            raise DatasetError(f"voc:{root}: ImageSets/Main/{self.listing}.txt lists no images")
        self.paths = [str(root / "JPEGImages" / f"{i}.jpg") for i in ids]
        self.problems: dict[int, BadImage] = {}
        rows = []
        for index, image_id in enumerate(ids):
            try:
                rows.append(read_annotation(root / "Annotations" / f"{image_id}.xml"))
            except BadImage as bad:
                self.problems[index] = bad
                rows.append(np.full(len(VOC_CLASSES), -1, dtype=np.int64))
        self.targets = np.stack(rows)
        super().__init__(str(root), split, len(ids), None, list(VOC_CLASSES))

    def name(self, i: int) -> str:
        return self.paths[self._index(i)]

    def describe(self) -> str:
        return f"{super().describe()} ({listing_read(self)})"

    def _annotated(self, i: int) -> str:
        """The JPEG path of in-range item ``i``; its annotation's BadImage when it has one."""
        if i in self.problems:
            raise self.problems[i].with_traceback(None)  # not the frames of earlier raises
        return self.paths[i]

    def _read(self, i: int, min_side: int | None = None) -> tuple[np.ndarray, str | None]:
        return decode_file(self._annotated(i), min_side)

    def check(self, i: int) -> tuple[str | None, tuple[int, int]]:
        return probe_file(self._annotated(self._index(i)))


def label_matrix(source: ImageSource) -> np.ndarray | None:
    """The (items, 20) label matrix of a ``voc:`` source, or of an evenly spread subset of one
    (``--max-items``); None for any other source."""
    if isinstance(source, SubsetSource):
        inner = label_matrix(source.source)
        return None if inner is None else inner[source.indices]
    return source.targets if isinstance(source, VOCClassification) else None


def listing_read(source: ImageSource) -> str | None:
    """The listing a ``voc:`` source (or a subset of one) was read from, e.g.
    ``ImageSets/Main/val.txt``: a split's name does not say it (VOC 2012's test split is
    ``val.txt``); None for any other source."""
    if isinstance(source, SubsetSource):
        return listing_read(source.source)
    return f"ImageSets/Main/{source.listing}.txt" if isinstance(source, VOCClassification) else None
