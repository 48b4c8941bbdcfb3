"""RGB-D data for the split-brain RGB | HHA model (SPEC section 6): depth encoded as HHA,
readers of the common RGB-D formats, the cached RGB + HHA dataset, held-out frames, and the
evaluation of the model's pretext tasks. See docs/RGBD.md.

    from splitbrain.rgbd import RGBDDataset, open_rgbd
    from splitbrain.data import TrainTransform
    dataset = RGBDDataset(open_rgbd("npz:frames.npz"), TrainTransform(resize=64, crop=64))
"""

from .dataset import RGBDDataset
from .hha import HHA, Intrinsics, hha
from .holdout import holdout_indices, split_frames, write_npz
from .pretext import PretextEvaluation, evaluate_pretext
from .sources import RGBDError, RGBDSelection, RGBDSource, open_rgbd

__all__ = [
    "HHA",
    "Intrinsics",
    "PretextEvaluation",
    "RGBDDataset",
    "RGBDError",
    "RGBDSelection",
    "RGBDSource",
    "evaluate_pretext",
    "hha",
    "holdout_indices",
    "open_rgbd",
    "split_frames",
    "write_npz",
]
