"""The training data of a run, opened by the data stack that the split's channel space names:
a dataset of uint8 (C, crop, crop) items with a ``collate``, and a function giving the line a
run prints about what it trained on (skipped files, HHA coverage).
"""

from __future__ import annotations

import logging
from collections.abc import Callable

import numpy as np
from torch.utils.data import Dataset

from ..data import (
    BadImage,
    ImageDataset,
    ImageSource,
    TrainTransform,
    scan_source,
    spread_items,
)
from ..rgbd import RGBDDataset
from ..rgbd.hha import Intrinsics
from ..rgbd.sources import open_data
from ..splits import get_split
from .config import TrainConfig

log = logging.getLogger("splitbrain.train")

Opened = tuple[Dataset, Callable[[], str]]


#: The shorter side up to which ``preset_for`` chooses the small preset.
SMALL_UP_TO = 96


def preset_for(source: ImageSource, samples: int = 32) -> tuple[str, str]:
    """The preset that fits ``source``'s images, and why: ``small`` when the median shorter
    side of ``samples`` evenly spaced items is at most SMALL_UP_TO px, ``paper`` above."""
    sampled = spread_items(source, samples)
    sides = []
    for i in range(len(sampled)):
        try:
            _, (height, width) = sampled.check(i)
        except BadImage:
            continue
        sides.append(min(height, width))
    if not sides:
        return "paper", "none of the sampled images could be read"
    side = int(np.median(sides))
    preset = "small" if side <= SMALL_UP_TO else "paper"
    return preset, (
        f"median shorter side {side} px over {len(sides)} sampled images; small up to "
        f"{SMALL_UP_TO} px, paper above"
    )


def open_training_data(config: TrainConfig) -> Opened:
    """The training dataset of ``config`` (random crops and mirrors, scale-jittered with
    ``resize_max``), and its report line. Images and channel stacks are scanned for bad items
    first, so a run that is mostly broken files stops before it starts."""
    space = get_split(config.split).space
    transform = TrainTransform(config.resize, config.crop, resize_max=config.resize_max)
    camera = Intrinsics(*config.intrinsics) if config.intrinsics else None
    source = open_data(config.data, space.data, "train", config.download, camera, config.max_items)
    log.info("data: %s", source.describe())
    if space.data == "rgbd":
        dataset = RGBDDataset(source, transform, progress=config.progress)
        return dataset, dataset.report
    # Photographs under half the crop would be upscaled more than 2x: they are bad items.
    # Channel stacks (tiles, scenes) of any size are resized to the crop.
    min_side = config.crop // 2 if space.data == "images" else 1
    if config.preset != "small":
        fix = f"too small for preset {config.preset} ({config.crop} px crops); use {{preset}} small"
        hint = (fix, "preset")
    else:
        hint = (f"too small for {config.crop} px crops; use a smaller {{crop}}", "crop")
    bad = scan_source(source, config.max_bad_fraction, min_side, progress=config.progress,
                      too_small_hint=hint)  # fmt: skip
    dataset = ImageDataset(source, transform, bad, min_side, channels=space.raw_channels)
    return dataset, bad.summary
