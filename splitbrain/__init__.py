"""splitbrain: Split-Brain Autoencoders (Zhang, Isola & Efros, CVPR 2017) in PyTorch.

import splitbrain as sb
model = sb.build("splitbrain", preset="paper")
feats = model.features(rgb, layers=["conv1", "conv5"])
"""

from importlib.metadata import PackageNotFoundError, version

from . import color, losses, quantize, splits
from .models import AlexNet, ModelConfig, SplitBrain
from .objective import Objective
from .variants import VARIANTS, build
from .weights import WeightsFileError, load, save

try:
    __version__ = version("splitbrain")
except PackageNotFoundError:  # running from a source tree that is not installed
    __version__ = "0.0.0+unknown"

__all__ = [
    "AlexNet",
    "ModelConfig",
    "Objective",
    "SplitBrain",
    "VARIANTS",
    "WeightsFileError",
    "build",
    "color",
    "load",
    "losses",
    "quantize",
    "save",
    "splits",
    "__version__",
]
