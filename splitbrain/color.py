"""CIE Lab colour machinery for batched tensors, and the paper's 313 ab bins.

The conversion matches ``skimage.color.rgb2lab`` (sRGB, D65 white, 2-degree observer) so that
numbers agree with the reference implementations of the colorization papers, while running
batched on whatever device and dtype the tensors live on, with gradients.
"""

from __future__ import annotations

import csv
import functools
from functools import cache
from importlib import resources

import torch
from torch import Tensor

# sRGB primaries to CIE XYZ, the matrix skimage uses (sRGB IEC 61966-2-1, D65).
_XYZ_FROM_RGB = (
    (0.412453, 0.357580, 0.180423),
    (0.212671, 0.715160, 0.072169),
    (0.019334, 0.119193, 0.950227),
)
# Its inverse, in float64 once, so that no matrix inversion runs per call (or in an ONNX graph).
_RGB_FROM_XYZ = tuple(
    tuple(row)
    for row in torch.linalg.inv(torch.tensor(_XYZ_FROM_RGB, dtype=torch.float64)).tolist()
)
_D65_WHITE = (0.95047, 1.0, 1.08883)
_EPSILON = 0.008856  # (6/29)^3 rounded as in skimage
_KAPPA = 7.787  # (29/6)^2 / 3 rounded as in skimage

AB_BINS_SOURCE = (
    "richzhang/colorization pts_in_hull.npy (as transcribed in OpenCV's "
    "samples/dnn/colorization.cpp), the ab bin centres of Zhang et al. ECCV 2016 / CVPR 2017"
)


def _matrix(rows: tuple, like: Tensor) -> Tensor:
    return torch.tensor(rows, dtype=like.dtype, device=like.device)


def _check_image(x: Tensor, name: str) -> None:
    if x.dim() != 4 or x.shape[1] != 3:
        raise ValueError(f"{name} must be a (N,3,H,W) tensor, got shape {tuple(x.shape)}")
    if not x.is_floating_point():
        raise TypeError(f"{name} must be a float tensor, got {x.dtype}")


def _full_precision(convert):
    """Run a conversion with autocast off: in bf16 it would be off by about one L unit."""

    @functools.wraps(convert)
    def wrapped(x: Tensor, *args, **kwargs) -> Tensor:
        with torch.autocast(x.device.type, enabled=False):
            return convert(x, *args, **kwargs)

    return wrapped


@_full_precision
def rgb_to_lab(rgb: Tensor) -> Tensor:
    """sRGB in [0, 1] (N,3,H,W) -> CIE Lab (N,3,H,W) with L in [0, 100]; computed in the
    input's precision even under autocast."""
    _check_image(rgb, "rgb")
    linear = torch.where(
        rgb > 0.04045,
        ((rgb.clamp(min=0.04045) + 0.055) / 1.055) ** 2.4,
        rgb / 12.92,
    )
    xyz = torch.einsum("ij,njhw->nihw", _matrix(_XYZ_FROM_RGB, rgb), linear)
    xyz = xyz / _matrix(_D65_WHITE, rgb).view(1, 3, 1, 1)
    f = torch.where(
        xyz > _EPSILON,
        xyz.clamp(min=_EPSILON) ** (1.0 / 3.0),
        _KAPPA * xyz + 16.0 / 116.0,
    )
    fx, fy, fz = f.unbind(1)
    return torch.stack((116.0 * fy - 16.0, 500.0 * (fx - fy), 200.0 * (fy - fz)), 1)


@_full_precision
def lab_to_rgb(lab: Tensor, clip: bool = True) -> Tensor:
    """CIE Lab (N,3,H,W) -> sRGB (N,3,H,W); out-of-gamut values are clipped to [0, 1];
    computed in the input's precision even under autocast."""
    _check_image(lab, "lab")
    L, a, b = lab.unbind(1)
    fy = (L + 16.0) / 116.0
    f = torch.stack((fy + a / 500.0, fy, fy - b / 200.0), 1)
    xyz = torch.where(
        f > _EPSILON ** (1.0 / 3.0),
        f.clamp(min=0.0) ** 3,
        (f - 16.0 / 116.0) / _KAPPA,
    )
    xyz = xyz * _matrix(_D65_WHITE, lab).view(1, 3, 1, 1)
    linear = torch.einsum("ij,njhw->nihw", _matrix(_RGB_FROM_XYZ, lab), xyz)
    rgb = torch.where(
        linear > 0.0031308,
        1.055 * linear.clamp(min=0.0031308) ** (1.0 / 2.4) - 0.055,
        12.92 * linear,
    )
    return rgb.clamp(0.0, 1.0) if clip else rgb


@cache
def _ab_bins_list() -> tuple[tuple[float, float], ...]:
    text = resources.files("splitbrain").joinpath("assets/ab_bins_313.csv").read_text()
    rows = list(csv.DictReader(text.splitlines()))
    return tuple((float(r["a"]), float(r["b"])) for r in rows)


def ab_bins(device: torch.device | str | None = None, dtype: torch.dtype = torch.float32) -> Tensor:
    """The paper's 313 ab bin centres, (313, 2), in the original class order.

    Source: ``AB_BINS_SOURCE``. The order matters: it is the class order of the released
    networks' 313-way output layer.
    """
    return torch.tensor(_ab_bins_list(), dtype=dtype, device=device)
