"""The objects of one photograph, for detection: boxes, their classes, and the regions no
metric counts; checked against the image's size and turned with its EXIF orientation."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .errors import BadImage

#: How far (pixels) a box may reach past the image's edge and be clipped to it: annotation
#: tools round, and VOC's 1-based corners end one pixel past a 0-based edge.
EDGE_SLACK = 1.0


@dataclass(frozen=True)
class Objects:
    """The objects of one image: ``boxes`` (N, 4) float32 x1, y1, x2, y2; ``labels`` (N,)
    int64 in 1..classes; ``ignored`` (N,) bool, regions no metric counts."""

    boxes: np.ndarray
    labels: np.ndarray
    ignored: np.ndarray

    @classmethod
    def none(cls) -> Objects:
        return cls(np.zeros((0, 4), np.float32), np.zeros(0, np.int64), np.zeros(0, bool))

    @classmethod
    def of(cls, found: list[tuple[tuple[float, ...], int, bool]]) -> Objects:
        """From (box, label, ignored) triples."""
        if not found:
            return cls.none()
        boxes, labels, ignored = zip(*found, strict=True)
        return cls(
            np.asarray(boxes, np.float32), np.asarray(labels, np.int64), np.asarray(ignored, bool)
        )

    def __len__(self) -> int:
        return len(self.labels)

    def checked(self, path: str, width: int, height: int) -> Objects:
        """These objects in an image of ``width`` x ``height``: clipped by up to
        ``EDGE_SLACK``; a BadImage for a box of zero area or outside the image."""
        for box in self.boxes:
            x1, y1, x2, y2 = (float(v) for v in box)
            if not (x2 > x1 and y2 > y1):
                raise BadImage(path, "bad box", f"box {_shown(box)} has zero area")
            if (
                x1 < -EDGE_SLACK
                or y1 < -EDGE_SLACK
                or x2 > width + EDGE_SLACK
                or (y2 > height + EDGE_SLACK)
            ):
                detail = f"box {_shown(box)} is outside the image, {width}x{height}"
                raise BadImage(path, "bad box", detail)
        clipped = self.boxes.copy()
        clipped[:, 0::2] = clipped[:, 0::2].clip(0, width)
        clipped[:, 1::2] = clipped[:, 1::2].clip(0, height)
        return Objects(clipped, self.labels, self.ignored)

    def turned(self, orientation: int, width: int, height: int) -> Objects:
        """These objects (on stored pixels ``width`` x ``height``) turned as EXIF
        ``orientation`` turns the photograph upright (``decode.orient``)."""
        if orientation in (1, 0) or not len(self):
            return self
        x1, y1, x2, y2 = self.boxes.T
        w, h = width, height
        corners = {
            2: (w - x2, y1, w - x1, y2),  # mirrored
            3: (w - x2, h - y2, w - x1, h - y1),  # turned 180
            4: (x1, h - y2, x2, h - y1),  # flipped
            5: (y1, x1, y2, x2),  # transposed
            6: (h - y2, x1, h - y1, x2),  # turned 90 clockwise to be upright
            7: (h - y2, w - x2, h - y1, w - x1),  # transversed
            8: (y1, w - x2, y2, w - x1),  # turned 90 anticlockwise
        }[orientation]
        return Objects(np.stack(corners, 1).astype(np.float32), self.labels, self.ignored)


def _shown(box: np.ndarray) -> str:
    return "(" + ", ".join(f"{float(v):g}" for v in box) + ")"
