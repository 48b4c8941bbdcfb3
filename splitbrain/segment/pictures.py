"""What a segmentation looks like: masks in the dataset's palette, overlays on the photograph,
a grid of frames with the truth and each model's prediction, and per-class IoU bars."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from ..data.masks import IGNORE
from ..evaluate.report import new_figure, save_figure

#: Colours for the pixels no class covers. No one colour is apart from every dataset's classes
#: (black is VOC's background, VOC's border cream is near CamVid's Pole), so a palette gets the
#: one farthest from all its class colours (``ignore_colour``).
IGNORE_CANDIDATES = (
    (255, 255, 255), (255, 0, 255), (0, 255, 255), (255, 255, 0), (0, 255, 0), (0, 0, 0),
)  # fmt: skip

#: The legend's name for the ignored pixels.
IGNORED = "ignored (no class)"


def ignore_colour(palette: np.ndarray) -> tuple[int, int, int]:
    """The candidate whose nearest class colour of ``palette`` is farthest (RGB distance), so
    an ignored pixel is never read as a class."""
    candidates = np.asarray(IGNORE_CANDIDATES, dtype=np.float64)
    colours = np.asarray(palette, dtype=np.float64).reshape(-1, 3)
    nearest = np.linalg.norm(candidates[:, None] - colours[None], axis=2).min(axis=1)
    return IGNORE_CANDIDATES[int(nearest.argmax())]


def legend_entries(classes: list[str], palette: np.ndarray) -> list[tuple[str, tuple[int, ...]]]:
    """(name, RGB) of each class, then of the ignored pixels, as the masks are coloured."""
    entries = [
        (name, tuple(int(v) for v in colour))
        for name, colour in zip(classes, palette, strict=False)
    ]
    return [*entries, (IGNORED, ignore_colour(palette))]


def colour_mask(mask: np.ndarray, palette: np.ndarray) -> np.ndarray:
    """(H, W) class indices -> (H, W, 3) uint8 in ``palette``, ``IGNORE`` in its
    ``ignore_colour``."""
    table = np.zeros((256, 3), dtype=np.uint8)
    table[: len(palette)] = palette
    table[IGNORE] = ignore_colour(palette)
    return table[mask]


def overlay(photo: np.ndarray, coloured: np.ndarray, alpha: float = 0.5) -> np.ndarray:
    """The coloured mask blended over the photograph."""
    mixed = (1 - alpha) * photo.astype(np.float32) + alpha * coloured.astype(np.float32)
    return mixed.round().astype(np.uint8)


def predictions_picture(
    photos: list[np.ndarray],
    truths: list[np.ndarray],
    predictions: dict[str, list[np.ndarray]],
    palette: np.ndarray,
    classes: list[str],
    path: Path,
) -> Path:
    """Rows of frames: the photograph, the truth, then each model's prediction; a legend of
    the class colours and the ignored pixels' below."""
    from matplotlib.patches import Patch

    columns = ["photograph", "truth", *predictions]
    figure = new_figure(2.6 * len(columns), 2.0 * len(photos) + 0.8)
    grid = figure.subplots(len(photos), len(columns), squeeze=False)
    for row, (photo, truth) in enumerate(zip(photos, truths, strict=True)):
        panels = [photo, colour_mask(truth, palette)]
        panels += [colour_mask(p[row], palette) for p in predictions.values()]
        for col, panel in enumerate(panels):
            axes = grid[row][col]
            axes.imshow(panel)
            axes.set_xticks([])
            axes.set_yticks([])
            if row == 0:
                axes.set_title(columns[col], fontsize="small")
    entries = legend_entries(classes, palette)
    handles = [Patch(color=np.asarray(colour) / 255, label=name) for name, colour in entries]
    figure.legend(
        handles=handles, loc="outside lower center", ncols=min(len(entries), 6), fontsize="small"
    )
    return save_figure(figure, path, dpi=110)
