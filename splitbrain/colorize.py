"""Automatic colorization with a model's L->ab half, at the photograph's full resolution.

The L->ab encoder sees the image's lightness at the network's geometry (its shorter side
resized to ``side``, by default the resize the preset trains at), predicts a distribution over
the 313 ab bins on its coarse grid, and decodes it: the annealed mean (softmax(log p / T),
T = 0.38, SPEC section 2) gives vivid but stable colours; ``mean`` and ``mode`` are the two
limits. The ab channels are upsampled bilinearly to the original size and joined with the
original's own lightness, the approach of the colorization papers: the output keeps every
detail of the input, whatever its size.

    out = sb.colorize(model, Image.open("grandma.jpg"))    # a PIL image in, a PIL image out
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image, ImageOps
from torch import Tensor

from .color import lab_to_rgb, rgb_to_lab
from .device import autocast
from .models import CrossChannelEncoder, EncoderSpec, SplitBrain
from .spaces import ChannelSpace
from .splits import Target, lab_split
from .variants import UNTRAINED, VARIANTS

DECODINGS = ("annealed", "mean", "mode")


def _colorizing(space: ChannelSpace, specs: tuple[EncoderSpec, ...]) -> tuple[int, Target] | None:
    """(index of the encoder, its target) that predicts ab by classification from L alone."""
    if not space.colorizes:
        return None
    for index, spec in enumerate(specs):
        for target in spec.half.targets:
            if (
                spec.half.inputs == space.groups["L"]
                and target.channels == space.groups["ab"]
                and target.loss == "cl"
            ):
                return index, target
    return None


def colorizer(model: SplitBrain) -> tuple[CrossChannelEncoder, Target] | None:
    """The encoder, and its target, that predicts ab by classification from L alone; None
    when the model has none (or its channel space does not take photographs)."""
    found = _colorizing(model.split.space, model.config.encoders)
    return None if found is None else (model.encoders[found[0]], found[1])


def colorizing_variants() -> list[str]:
    """The variants that can colorize photographs (on the ``lab`` split), once trained."""
    split = lab_split()
    return [
        name
        for name, make in VARIANTS.items()
        if name not in UNTRAINED and _colorizing(split.space, make(split))
    ]


def untrained_colours(model: SplitBrain) -> str | None:
    """Why ``model``'s colour head has not learnt colours (None when it may have): a random
    network, a classifier fine-tuned since, imported weights whose files hold no heads, or a
    file of 0 training steps (``model.provenance``, the record of the file it was loaded from)."""
    provenance = model.provenance
    if model.config.variant in UNTRAINED:
        return f"variant {model.config.variant!r} is an untrained, random network"
    if model.config.classifier is not None:
        return (
            "it is a classifier fine-tuned since its pre-training, which no longer matches its "
            "colour head; colorize with the weights it was fine-tuned from"
        )
    if str(provenance.get("source", "")).startswith("caffe:"):
        return "imported Caffe weights: the released files hold no colour heads"
    if provenance.get("steps") == 0:
        return "its file records 0 training steps"
    return None


def require_colorizer(model: SplitBrain) -> tuple[CrossChannelEncoder, Target]:
    """``colorizer(model)``, or a ValueError that names the variants that can colorize."""
    found = colorizer(model)
    if found is None:
        raise ValueError(
            f"variant {model.config.variant!r} on split {model.split.name!r} has no L->ab "
            f"classification half; variants that can colorize: {', '.join(colorizing_variants())}"
        )
    if reason := untrained_colours(model):
        raise ValueError(f"this model cannot colorize: {reason}")
    return found


@torch.no_grad()
def predict_ab(
    model: SplitBrain,
    lightness: Tensor,
    temperature: float | None = None,
    decode: str | None = None,
) -> Tensor:
    """L in [0, 100] (N,1,h,w) -> the predicted ab (N,2,g,g) on the network's grid; the
    decoding not given is the one its weights file records (``SplitBrain.decoding``)."""
    decode, temperature = model.decoding(decode, temperature)
    if decode not in DECODINGS:
        raise ValueError(f"unknown decoding {decode!r}; choose from {', '.join(DECODINGS)}")
    if not 0 < temperature < math.inf:
        raise ValueError(f"the temperature must be positive and finite, got {temperature}")
    encoder, target = require_colorizer(model)
    zeros = torch.zeros_like(lightness)  # (no Python sizes: ONNX export keeps shapes dynamic)
    lab = torch.cat([lightness, zeros, zeros], 1)
    logits = encoder(model.encoder_input(encoder, lab), (target.name,))[target.name]
    return model.quantizer(target.quantizer).decode(logits, decode, temperature)


def _resized(rgb: Tensor, side: int) -> Tensor:
    """Float RGB (N,3,H,W) with its shorter side at ``side`` (bilinear, antialiased)."""
    height, width = rgb.shape[-2:]
    scale = side / min(height, width)
    size = (max(side, round(height * scale)), max(side, round(width * scale)))
    if size == (height, width):
        return rgb
    out = F.interpolate(rgb, size=size, mode="bilinear", antialias=True, align_corners=False)
    return out.clamp(0.0, 1.0)


def greyscale(rgb: Tensor) -> Tensor:
    """RGB (N,3,H,W) -> the RGB of its lightness alone (ab = 0)."""
    lab = rgb_to_lab(rgb)
    return lab_to_rgb(torch.cat([lab[:, :1], torch.zeros_like(lab[:, 1:])], 1))


@torch.no_grad()
def colorize_rgb(
    model: SplitBrain,
    rgb: Tensor,
    side: int | None = None,
    temperature: float | None = None,
    decode: str | None = None,
    precision: str = "32-true",
) -> Tensor:
    """Float RGB (N,3,H,W) in [0, 1] -> its colorization (N,3,H,W) at the same size, on the
    input's device: the network sees the lightness with the shorter side at ``side``
    (default: the preset's training resize) at ``precision`` (colours are always computed in
    fp32), and the output keeps the input's own lightness. The network runs on the batch; the
    full-resolution colour conversions run one image at a time (a batch of large photographs
    would need gigabytes at once)."""
    require_colorizer(model)
    device = next(model.parameters()).device
    side = side or model.geometry()[0]
    small = _resized(rgb.float(), side).to(device)
    was_training = model.training
    model.eval()  # one photograph's colours must not depend on batch statistics
    try:
        with autocast(device, precision):
            ab = predict_ab(model, rgb_to_lab(small)[:, :1], temperature, decode)
        ab = ab.float().to(rgb.device)
    finally:
        model.train(was_training)
    out = []
    for image, colour in zip(rgb.float().split(1), ab.split(1), strict=True):
        colour = F.interpolate(colour, size=image.shape[-2:], mode="bilinear", align_corners=False)
        out.append(lab_to_rgb(torch.cat([rgb_to_lab(image)[:, :1], colour], 1)))
    return torch.cat(out)


def _as_rgb_array(image: Image.Image | np.ndarray) -> np.ndarray:
    """(H, W, 3) uint8 of a PIL image (EXIF orientation applied, Pillow's conversion to RGB)
    or of an (H, W, 3) / (H, W) uint8 array."""
    if isinstance(image, Image.Image):
        return np.asarray(ImageOps.exif_transpose(image).convert("RGB"))
    array = np.asarray(image)
    if array.ndim == 2:
        array = np.repeat(array[..., None], 3, axis=2)
    if array.dtype != np.uint8 or array.ndim != 3 or array.shape[-1] != 3:
        raise TypeError(
            f"expected an (H, W, 3) or (H, W) uint8 array, got {array.dtype} {array.shape}"
        )
    return array


def colorize(
    model: SplitBrain,
    image: Image.Image | np.ndarray | Tensor,
    temperature: float | None = None,
    decode: str | None = None,
    side: int | None = None,
):
    """The model's colorization of ``image``'s greyscale, as the same kind of object:

    * a PIL image (EXIF orientation applied, converted by Pillow to RGB) -> an RGB PIL image;
    * an (H, W, 3) or (H, W) uint8 array -> an (H, W, 3) uint8 array;
    * a float tensor (N,3,H,W) or (3,H,W) in [0, 1] -> a tensor of the same shape and dtype.

    Colour inputs are colorized from their lightness alone. ``decode``: ``annealed`` (the
    annealed mean at ``temperature``), ``mean`` or ``mode``; by default the weights file's
    (``SplitBrain.decoding``: annealed, 0.38 unless it records others). ``side``: the shorter
    side the network sees (default: the resize its file records, else the preset's). For files, the
    data pipeline's decoding (16-bit scans, transparency, ...) is
    ``splitbrain.data.decode.decode_file(path)[0]``, an array this accepts.
    """
    if isinstance(image, Tensor):
        if not image.is_floating_point() or image.dim() not in (3, 4) or image.shape[-3] != 3:
            raise TypeError(
                "expected a float RGB tensor (N,3,H,W) or (3,H,W) in [0, 1], got "
                f"{image.dtype} {tuple(image.shape)}"
            )
        batch = image if image.dim() == 4 else image[None]
        out = colorize_rgb(model, batch, side, temperature, decode).to(image.dtype)
        return out if image.dim() == 4 else out[0]
    array = _as_rgb_array(image)
    rgb = torch.tensor(array).permute(2, 0, 1)[None].float() / 255  # a copy: may be read-only
    out = colorize_rgb(model, rgb, side, temperature, decode)[0]
    pixels = (out.permute(1, 2, 0).numpy() * 255).round().astype(np.uint8)
    return Image.fromarray(pixels) if isinstance(image, Image.Image) else pixels


def save_colorization_grid(
    model: SplitBrain, rgb: Tensor, path: str | Path, scale: int = 2
) -> Path:
    """A PNG with one column per image (N,3,H,W): greyscale, colorization at the images' own
    size, original."""
    rows = [greyscale(rgb), colorize_rgb(model, rgb, side=min(rgb.shape[-2:])), rgb]
    grid = torch.cat([torch.cat(list(row.cpu()), 2) for row in rows], 1)  # (3, 3H, N*W)
    picture = (grid.permute(1, 2, 0).clamp(0, 1).numpy() * 255).round().astype(np.uint8)
    image = Image.fromarray(picture)
    image = image.resize((image.width * scale, image.height * scale), Image.Resampling.NEAREST)
    path = Path(path)
    image.save(path)
    return path
