"""The training data of a run: the data stack that the split's channel space names opens it.

Every opener returns a dataset of uint8 (C, crop, crop) items with a ``collate``, and a
function giving the line a run prints about what it trained on (skipped files, HHA coverage).
"""

from __future__ import annotations

import logging
from collections.abc import Callable

from torch.utils.data import Dataset

from ..data import (
    ImageDataset,
    ImageSource,
    TrainTransform,
    open_channels,
    open_source,
    scan_source,
)
from ..rgbd import RGBDDataset, open_rgbd
from ..spaces import ChannelSpace
from ..splits import get_split
from .config import TrainConfig

log = logging.getLogger("splitbrain.train")

Opened = tuple[Dataset, Callable[[], str]]


def _scanned(
    source: ImageSource,
    config: TrainConfig,
    space: ChannelSpace,
    transform: TrainTransform,
    min_side: int,
) -> Opened:
    """Images or channel stacks, scanned for bad items first: a run that is mostly broken
    files stops before it starts. Items whose shorter side is under ``min_side`` are bad."""
    log.info("data: %s", source.describe())
    bad = scan_source(source, config.max_bad_fraction, min_side, progress=config.progress)
    dataset = ImageDataset(source, transform, bad, min_side, channels=space.raw_channels)
    return dataset, bad.summary


def _rgbd(config: TrainConfig, space: ChannelSpace, transform: TrainTransform) -> Opened:
    source = open_rgbd(config.data)
    log.info("data: %s", source.describe())
    dataset = RGBDDataset(source, transform, progress=config.progress)
    return dataset, dataset.report


#: Data stack name (``ChannelSpace.data``) -> how its training data is opened.
OPENERS: dict[str, Callable[[TrainConfig, ChannelSpace, TrainTransform], Opened]] = {
    # photographs under half the crop would be upscaled more than 2x: they are skipped
    "images": lambda c, *args: _scanned(
        open_source(c.data, "train", c.download), c, *args, min_side=c.crop // 2
    ),
    # channel stacks (tiles, scenes) of any size are resized to the crop, as they always were
    "channels": lambda c, *args: _scanned(open_channels(c.data), c, *args, min_side=1),
    "rgbd": _rgbd,
}


def open_training_data(config: TrainConfig) -> Opened:
    """The training dataset of ``config`` (random crops and mirrors), and its report line."""
    space = get_split(config.split).space
    return OPENERS[space.data](config, space, TrainTransform(config.resize, config.crop))
