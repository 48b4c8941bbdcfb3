"""ONNX export of a trained network, to run it outside Python (``splitbrain export``).

Two graphs, both with a dynamic batch size and image size (float32, NCHW):

* ``features``: RGB in [0, 1] (N,3,H,W) -> the chosen layers of both halves, concatenated as in
  ``model.features``, one output per layer (N,C,h,w), before any pooling.
* ``colorizer``: RGB in [0, 1] (N,3,H,W), or lightness L in [0, 100] (N,1,H,W) -> the ab the
  network predicts on its grid (N,2,g,g), or the colorized RGB (N,3,H,W) at the input's size
  (annealed mean at the export's temperature). The graph sees the image at the size it is
  given: resize it to the network's geometry first (``sb.colorize`` does this in Python).

The export uses ``torch.onnx.export`` with the dynamo exporter, which needs the ``onnxscript``
package (``pip install splitbrain[onnx]``); ``onnxruntime`` runs the result.
"""

from __future__ import annotations

import copy
import importlib.util
import logging
import warnings
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ..color import lab_to_rgb, rgb_to_lab
from ..colorize import predict_ab, require_colorizer
from ..extract import activation_shapes
from ..models import SplitBrain

WHAT = ("features", "colorizer")


def minimum_side(model: SplitBrain) -> int:
    """The smallest square input for which every layer of the model has an output (small
    and paper: a few pixels; transfer: about 200, for fc6's 6x6 kernel over pool5)."""
    for side in range(1, 4096):
        if min(s for _, s in activation_shapes(model, side).values()) >= 1:
            return side
    raise ValueError("no input size gives every layer an output")


class FeaturesGraph(nn.Module):
    """RGB -> the activations of ``layers``, both halves concatenated."""

    def __init__(self, model: SplitBrain, layers: list[str]) -> None:
        super().__init__()
        self.model, self.layers = model.eval(), list(layers)

    def forward(self, rgb: Tensor) -> tuple[Tensor, ...]:
        features = self.model.features(rgb, self.layers)
        return tuple(features[name] for name in self.layers)


class ColorizerGraph(nn.Module):
    """RGB or L -> ab on the grid, or the colorized RGB at the input's size."""

    def __init__(
        self,
        model: SplitBrain,
        takes: str = "rgb",
        gives: str = "rgb",
        temperature: float | None = None,
    ) -> None:
        super().__init__()
        if takes not in ("rgb", "L") or gives not in ("rgb", "ab"):
            raise ValueError(
                f"the colorizer takes rgb or L and gives rgb or ab, not {takes}, {gives}"
            )
        self.model, self.takes, self.gives = model.eval(), takes, gives
        self.decode, self.temperature = model.decoding(None, temperature)  # fixed in the graph
        require_colorizer(model)

    def forward(self, image: Tensor) -> Tensor:
        lightness = rgb_to_lab(image)[:, :1] if self.takes == "rgb" else image
        ab = predict_ab(self.model, lightness, self.temperature, self.decode)
        if self.gives == "ab":
            return ab
        ab = F.interpolate(ab, size=lightness.shape[-2:], mode="bilinear", align_corners=False)
        return lab_to_rgb(torch.cat([lightness, ab], 1))


def export_onnx(
    model: SplitBrain,
    path: str | Path,
    what: str = "features",
    layers: list[str] | None = None,
    takes: str = "rgb",
    gives: str = "rgb",
    temperature: float | None = None,
) -> Path:
    """Write ``model`` as an ONNX graph (see the module docstring); returns the path."""
    if importlib.util.find_spec("onnxscript") is None:
        raise ValueError("ONNX export needs the onnxscript package: pip install onnxscript")
    model = copy.deepcopy(model).cpu().eval()  # the caller's model stays where it is
    if what == "features":
        graph: nn.Module = FeaturesGraph(model, layers or ["conv5"])
        channels, outputs = model.split.space.raw_channels, list(graph.layers)
    elif what == "colorizer":
        graph = ColorizerGraph(model, takes, gives, temperature)
        channels, outputs = (3 if takes == "rgb" else 1), ["ab" if gives == "ab" else "colorized"]
    else:
        raise ValueError(f"unknown graph {what!r}; choose from {', '.join(WHAT)}")
    graph.eval()
    smallest = max(minimum_side(model), 16)
    example = torch.rand(2, channels, 2 * smallest, 2 * smallest)
    if what == "colorizer" and takes == "L":
        example = example * 100
    side = {"min": smallest, "max": 16384}
    dynamic = {
        0: torch.export.Dim("batch", min=1, max=4096),
        2: torch.export.Dim("height", **side),
        3: torch.export.Dim("width", **side),
    }
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    name = "L" if what == "colorizer" and takes == "L" else "rgb" if channels == 3 else "raw"
    # the exporter's notes on operators this package never uses, for the time of the export
    registration = logging.getLogger("torch.onnx._internal.exporter._registration")
    level = registration.level
    registration.setLevel(logging.ERROR)
    try:
        with torch.no_grad(), warnings.catch_warnings():
            # a deprecation between torch's exporter and its pytree, not the user's business
            warnings.filterwarnings("ignore", message=r".*isinstance\(treespec, LeafSpec\)")
            torch.onnx.export(
                graph,
                (example,),
                str(path),
                dynamo=True,
                input_names=[name],
                output_names=outputs,
                dynamic_shapes=(dynamic,),
                external_data=False,
                verbose=False,
            )
    finally:
        registration.setLevel(level)
    return path
