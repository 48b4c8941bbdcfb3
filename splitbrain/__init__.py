"""splitbrain: Split-Brain Autoencoders (Zhang, Isola & Efros, CVPR 2017) in PyTorch.

    import splitbrain as sb
    model = sb.build("splitbrain", preset="paper")      # in eval mode, like sb.load(...)
    feats = model.features(rgb, layers=["conv1", "conv5"])

The public API is ``__all__``: building, loading and saving models (weights files, model
folders in the Hugging Face convention, hub names), their objective, the colorizer, feature
extraction, and the method's modules (colour, quantization, channel splits, losses). The
machinery lives in subpackages: ``data``, ``rgbd``, ``train``, ``evaluate``, ``inference``,
``cli``.
"""

from importlib.metadata import PackageNotFoundError, version

from . import color, losses, quantize, splits
from .colorize import colorize
from .extract import extract
from .models import SplitBrain
from .objective import Objective
from .variants import VARIANTS, build
from .weights import WeightsFileError, load, save, save_pretrained

try:
    __version__ = version("splitbrain")
except PackageNotFoundError:  # running from a source tree that is not installed
    __version__ = "0.0.0+unknown"

__all__ = [
    "Objective",
    "SplitBrain",
    "VARIANTS",
    "WeightsFileError",
    "__version__",
    "build",
    "color",
    "colorize",
    "extract",
    "load",
    "losses",
    "quantize",
    "save",
    "save_pretrained",
    "splits",
]
