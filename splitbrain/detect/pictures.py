"""What a detection looks like: boxes drawn on photographs (the truth, and each model's), and
each category's AP per model as bars."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from ..data.objects import Objects
from ..evaluate.report import class_bars, new_figure, save_figure

#: Detections drawn: those scoring at least this, the best ``DRAWN`` of them.
SHOWN_SCORE, DRAWN = 0.5, 20


def ap_picture(aps: dict[str, list[float]], classes: list[str], path: Path, title: str) -> Path:
    """Grouped bars of each category's AP50 for each model."""
    return class_bars(aps, classes, path, title, "AP50 (%)")


def draw_boxes(
    axes,
    boxes: np.ndarray,
    labels: np.ndarray,
    names: list[str],
    scores: np.ndarray | None = None,
    dashed: np.ndarray | None = None,
) -> None:
    """Boxes on ``axes`` in their category's colour, named (with the score, when given);
    ``dashed`` ones are regions no metric counts."""
    from matplotlib.patches import Rectangle

    for k, (x1, y1, x2, y2) in enumerate(boxes):
        colour = f"C{int(labels[k]) - 1}"
        style = "--" if dashed is not None and dashed[k] else "-"
        axes.add_patch(Rectangle((x1, y1), x2 - x1, y2 - y1, fill=False, edgecolor=colour,
                                 linewidth=1.2, linestyle=style))  # fmt: skip
        text = names[int(labels[k]) - 1] + ("" if scores is None else f" {scores[k]:.2f}")
        axes.text(x1, y1, text, color="white", fontsize=5, va="bottom",
                  bbox={"facecolor": colour, "pad": 0.5, "linewidth": 0})  # fmt: skip


def boxes_picture(
    photos: list[np.ndarray],
    truths: list[Objects],
    found: dict[str, list[dict[str, np.ndarray]]],
    classes: list[str],
    path: Path,
) -> Path:
    """Rows of images: the true boxes (crowd and difficult regions dashed), then each model's
    boxes scoring ``SHOWN_SCORE`` or more."""
    columns = ["truth", *found]
    height, width = photos[0].shape[:2]
    panel = 3.2
    drawn = new_figure(panel * len(columns), panel * height / width * len(photos) + 0.4)
    grid = drawn.subplots(len(photos), len(columns), squeeze=False)
    for row, (photo, truth) in enumerate(zip(photos, truths, strict=True)):
        for col, name in enumerate(columns):
            axes = grid[row][col]
            axes.imshow(photo)
            axes.set_xticks([])
            axes.set_yticks([])
            if row == 0:
                axes.set_title(name, fontsize="small")
            if col == 0:
                draw_boxes(axes, truth.boxes, truth.labels, classes, dashed=truth.ignored)
                continue
            output = found[name][row]
            keep = np.flatnonzero(output["scores"] >= SHOWN_SCORE)[:DRAWN]
            draw_boxes(axes, output["boxes"][keep], output["labels"][keep], classes,
                       output["scores"][keep])  # fmt: skip
    return save_figure(drawn, path, dpi=130)
