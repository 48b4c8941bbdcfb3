"""Segmentation pictures: the ignored pixels have a colour of their own, apart from every class
colour, and the legend names it."""

import numpy as np
import pytest

from splitbrain.data.masks import CAMVID_PALETTE, IGNORE, voc_palette
from splitbrain.segment.pictures import IGNORED, colour_mask, ignore_colour, legend_entries

PALETTES = {"camvid": np.asarray(CAMVID_PALETTE, dtype=np.uint8), "voc": voc_palette(21)}


@pytest.mark.parametrize("name", sorted(PALETTES))
def test_the_ignored_colour_is_far_from_every_class_colour(name):
    palette = PALETTES[name].astype(float)
    distances = np.linalg.norm(palette - np.asarray(ignore_colour(PALETTES[name])), axis=1)
    # VOC's border cream, the colour before, is 78 from CamVid's Pole (192, 192, 128)
    assert distances.min() >= 150, distances.round()


def test_the_legend_ends_with_the_ignored_pixels_in_the_colour_the_masks_have():
    palette = PALETTES["camvid"][:3]
    entries = legend_entries(["Sky", "Building", "Pole"], palette)
    assert [name for name, _ in entries] == ["Sky", "Building", "Pole", IGNORED]
    assert entries[1][1] == (128, 0, 0)
    coloured = colour_mask(np.array([[0, IGNORE]], dtype=np.uint8), palette)
    assert tuple(coloured[0, 0]) == entries[0][1]
    assert tuple(coloured[0, 1]) == entries[-1][1] == ignore_colour(palette)
