"""Automatic colorization with a model's L->ab half, and pictures a person can look at.

The L->ab encoder predicts a distribution over the 313 ab bins on its coarse grid; the
annealed mean (T = 0.38) gives vivid but stable colours, which are upsampled bilinearly to the
image and joined with the input's own lightness.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image
from torch import Tensor

from .color import lab_to_rgb
from .models import CrossChannelEncoder, SplitBrain
from .splits import Target


def colorizer(model: SplitBrain) -> tuple[CrossChannelEncoder, Target] | None:
    """The encoder, and its target, that predicts ab by classification from L alone; None
    when the model has none (or its channel space does not take photographs)."""
    space = model.split.space
    if not space.colorizes:
        return None
    for encoder in model.encoders:
        for target in encoder.spec.half.targets:
            if (
                encoder.spec.half.inputs == space.groups["L"]
                and target.channels == space.groups["ab"]
                and target.loss == "cl"
            ):
                return encoder, target
    return None


@torch.no_grad()
def colorize(model: SplitBrain, rgb: Tensor, temperature: float = 0.38) -> Tensor:
    """RGB in [0,1] (N,3,H,W) -> the model's colorization of its greyscale, (N,3,H,W)."""
    found = colorizer(model)
    if found is None:
        raise ValueError(f"variant {model.config.variant!r} has no L->ab classification half")
    encoder, target = found
    was_training = model.training
    model.eval()
    lab = model.channels(rgb)
    logits = encoder(model.encoder_input(encoder, lab), (target.name,))[target.name]
    ab = model.quantizer(target.quantizer).decode(logits, "annealed", temperature)
    ab = F.interpolate(ab, size=rgb.shape[-2:], mode="bilinear", align_corners=False)
    model.train(was_training)
    return lab_to_rgb(torch.cat([lab[:, :1], ab], 1))


def save_colorization_grid(
    model: SplitBrain, rgb: Tensor, path: str | Path, scale: int = 2
) -> Path:
    """A PNG with one column per image: greyscale input, colorization, original."""
    grey = lab_to_rgb(torch.cat([model.channels(rgb)[:, :1], torch.zeros_like(rgb[:, :2])], 1))
    rows = [grey, colorize(model, rgb), rgb]
    grid = torch.cat([torch.cat(list(row.cpu()), 2) for row in rows], 1)  # (3, 3H, N*W)
    picture = (grid.permute(1, 2, 0).clamp(0, 1).numpy() * 255).round().astype(np.uint8)
    image = Image.fromarray(picture)
    image = image.resize((image.width * scale, image.height * scale), Image.Resampling.NEAREST)
    path = Path(path)
    image.save(path)
    return path
