"""Data sources for training and evaluation: folders, CIFAR, STL-10, npz, built-in photos, and
channel stacks (npz, TIFF). RGB-D frames are in ``splitbrain.rgbd``, on the same protocol.

    from splitbrain.data import open_source, scan_source, ImageDataset, TrainTransform
    src = open_source("folder:/path/to/photos", split="train")
    report = scan_source(src, min_side=crop // 2)        # fails fast when >1% are unusable
    ds = ImageDataset(src, TrainTransform(resize=256, crop=224), log=report)
    loader = DataLoader(ds, batch_size=64, collate_fn=ImageDataset.collate, num_workers=2)

See docs/DATA.md for the formats, the specs and the bad-file policy.
"""

from .badlog import BadImageLog
from .base import UNLABELED, ImageSource, Source, SubsetSource, spread_items
from .dataset import ImageDataset
from .errors import BadImage, DatasetError
from .masks import IGNORE, MaskSource, open_masks, segmentation_pairs
from .scan import scan_source
from .sources import FORMATS, detect_format, open_channels, open_source
from .transforms import EvalTransform, TrainTransform

__all__ = [
    "FORMATS",
    "IGNORE",
    "UNLABELED",
    "BadImage",
    "BadImageLog",
    "DatasetError",
    "EvalTransform",
    "ImageDataset",
    "ImageSource",
    "MaskSource",
    "Source",
    "SubsetSource",
    "TrainTransform",
    "detect_format",
    "spread_items",
    "open_channels",
    "open_masks",
    "segmentation_pairs",
    "open_source",
    "scan_source",
]
