"""The models an evaluation compares: weights files, and untrained baselines built on the spot.

``--weights`` takes, besides a ``.safetensors`` file, the paper's two untrained baselines for
any preset:

* ``gaussian:PRESET[:WIDTH]``: the split-brain architecture at its random initialisation;
* ``init:kraehenbuehl:PRESET[:WIDTH]``: the same after the data-dependent initialisation of
  Krähenbühl et al. (``splitbrain.init.kraehenbuehl_init_``), run on 256
  random crops of the evaluation's own training images. ``init:gaussian:...`` is the first.

The gaussian network gets BatchNorm statistics measured on 10 batches of 80 of those images,
as ``splitbrain pretrain --variant gaussian`` does (an untrained net's eval-mode activations
would otherwise explode or vanish in the deep layers); the Krähenbühl initialisation sets them
itself, to the statistics of its batch. ``NAME=SPEC`` names a model in the
tables (default: the run folder of a ``weights.safetensors``, else the file's stem or the
spec itself).
"""

from __future__ import annotations

from pathlib import Path

import torch

from ..data import TrainTransform
from ..init import CALIBRATION_BATCHES, INITS, calibrate_batchnorm, kraehenbuehl_init_
from ..models import PRESETS, SplitBrain, input_geometry
from ..variants import build
from ..weights import load
from .data import LabelledData, loader

CALIBRATION_BATCH_SIZE = 80  # pre-training's default batch, as for the gaussian variant
INIT_BATCH_SIZE = 256  # the top of the 64-256 images splitbrain.init asks for


def split_name(spec: str) -> tuple[str, str]:
    """(name shown in tables, model spec) of ``NAME=SPEC`` or of a bare spec."""
    name, sep, rest = spec.partition("=")
    if sep and name and "/" not in name:
        return name, rest
    path = Path(spec)
    if path.suffix == ".safetensors":
        return (path.parent.name or path.stem) if path.stem == "weights" else path.stem, spec
    return spec, spec


def _baseline_parts(spec: str) -> list[str] | None:
    """``init``, INIT, PRESET[, WIDTH] of a baseline spec (``gaussian:`` is ``init:gaussian:``),
    None for a weights file."""
    parts = spec.split(":")
    if parts[0] == "gaussian":
        parts = ["init", *parts]
    return parts if parts[0] == "init" and len(parts) >= 2 else None


def names_width(spec: str) -> bool:
    """Whether a baseline spec gives its width (``gaussian:small:0.5``, not ``gaussian:small``)."""
    parts = _baseline_parts(spec)
    return parts is not None and len(parts) == 4


def parse_baseline(spec: str) -> tuple[str, str, float] | None:
    """(init, preset, width) of a baseline spec, None for a weights file; ValueError if it
    looks like a baseline but is malformed."""
    parts = _baseline_parts(spec)
    if parts is None:
        return None
    usage = (
        f"{spec!r}: expected gaussian:PRESET[:WIDTH] or init:{{{','.join(INITS)}}}:PRESET[:WIDTH]"
    )
    if len(parts) not in (3, 4) or parts[1] not in INITS or parts[2] not in PRESETS:
        raise ValueError(f"{usage} with PRESET one of {', '.join(PRESETS)}")
    try:
        width = float(parts[3]) if len(parts) == 4 else 1.0
    except ValueError:
        raise ValueError(f"{usage}: width {parts[3]!r} is not a number") from None
    if width <= 0:
        raise ValueError(f"{usage}: width must be positive")
    return parts[1], parts[2], width


def build_baseline(
    init: str,
    preset: str,
    width: float,
    data: LabelledData,
    seed: int = 0,
    crop: int | None = None,
    resize: int | None = None,
) -> SplitBrain:
    """An untrained split-brain network initialised by ``init`` from ``data``'s training
    images (random crops at the evaluation's ``crop`` and ``resize``, default the preset's),
    ready for evaluation in eval mode."""
    torch.manual_seed(seed)
    model = build("gaussian" if init == "gaussian" else "splitbrain", preset, width=width)
    if init == "gaussian":
        return batchnorm_from(model, data, seed, crop, resize)
    # Krähenbühl's sets the BatchNorm statistics itself, to those of its batch
    train = data.dataset("train", TrainTransform(*input_geometry(preset, crop, resize)))
    images, _ = next(iter(loader(train, INIT_BATCH_SIZE, shuffle=True, seed=seed)))
    kraehenbuehl_init_(model, images.float() / 255.0, seed=seed)
    return model


def batchnorm_from(
    model: SplitBrain,
    data: LabelledData,
    seed: int = 0,
    crop: int | None = None,
    resize: int | None = None,
) -> SplitBrain:
    """``model`` with its BatchNorm statistics measured anew on ``data``'s training images
    (random crops at ``crop`` and ``resize``, default the model's geometry), in eval mode: how
    an untrained baseline gets them, and how a transferred network can take the statistics of
    its new task's images instead of its pre-training data's."""
    train = data.dataset("train", TrainTransform(*model.geometry(crop, resize)))
    batches = loader(train, CALIBRATION_BATCH_SIZE, shuffle=True, seed=seed)
    calibrate_batchnorm(model, batches, CALIBRATION_BATCHES)
    return model


def open_model(
    spec: str,
    data: LabelledData,
    seed: int = 0,
    preset: str | None = None,
    crop: int | None = None,
    resize: int | None = None,
) -> tuple[str, SplitBrain]:
    """(name, model in eval mode) for a weights file or a baseline spec, optionally NAME=...;
    ``preset`` rebuilds weights files at another geometry (``weights.load``); a baseline
    names its own and is initialised from images at the evaluation's ``crop`` and ``resize``."""
    name, spec = split_name(spec)
    baseline = parse_baseline(spec)
    if baseline is None:
        return name, load(spec, preset=preset)
    return name, build_baseline(*baseline, data, seed, crop, resize)
