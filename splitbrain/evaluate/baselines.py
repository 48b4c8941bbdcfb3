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

import logging
from collections.abc import Sequence
from pathlib import Path

import torch

from ..data import TrainTransform
from ..errors import SettingError, literal
from ..init import CALIBRATION_BATCHES, INITS, calibrate_batchnorm, kraehenbuehl_init_
from ..models import PRESETS, SplitBrain, input_geometry
from ..variants import build, width_of
from ..weights import load, read_config, read_geometry
from .data import LabelledData, loader

log = logging.getLogger("splitbrain.evaluate")

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


def _positive(text: str) -> float | None:
    """``text`` as a positive number, None if it is not one."""
    try:
        value = float(text)
    except ValueError:
        return None
    return value if value > 0 else None


def parse_baseline(spec: str) -> tuple[str, str, float] | None:
    """(init, preset, width) of a baseline spec, None for a weights file; a SettingError
    (``weights``, a ValueError: a misused option on the command line) saying what is wrong
    with one that looks like a baseline."""
    parts = _baseline_parts(spec)
    if parts is None:
        return None
    if len(parts) not in (3, 4):
        problem = f"expected gaussian:PRESET[:WIDTH] or init:{{{','.join(INITS)}}}:PRESET[:WIDTH]"
    elif parts[1] not in INITS:
        problem = f"no initialisation {parts[1]!r}; the initialisations are {', '.join(INITS)}"
    elif parts[2] not in PRESETS:
        problem = f"no preset {parts[2]!r}; the presets are {', '.join(PRESETS)}"
    elif (width := _positive(parts[3]) if len(parts) == 4 else 1.0) is None:
        problem = f"the width {parts[3]!r} is not a positive number"
    else:
        return parts[1], parts[2], width
    raise SettingError("weights", literal(problem), spec)


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
    ready for evaluation in eval mode. A geometry given is recorded as the network's own
    (``SplitBrain.geometry``), as a weights file records the one it was pre-trained at."""
    torch.manual_seed(seed)
    model = build("gaussian" if init == "gaussian" else "splitbrain", preset, width=width)
    if crop or resize:
        resize, crop = input_geometry(preset, crop, resize)
        model.provenance["geometry"] = {"preset": preset, "resize": resize, "crop": crop}
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


def check_models(specs: Sequence[str]) -> str:
    """Every spec opens (files: their header; baselines: their spec) and names a row of its
    own, and all read the same kind of data, before any data is read or model evaluated:
    WeightsFileError for a file that is not one, SettingError (``weights``) for the rest.
    Returns that kind (``ChannelSpace.data``: images, channels, rgbd)."""
    seen: dict[str, str] = {}
    kinds: dict[str, str] = {}
    for spec in specs:
        name, model = split_name(spec)
        if parse_baseline(model) is None:
            config = read_config(model)  # the header alone; a bad file is bad input
            kinds.setdefault(config.split.space.data, spec)
        else:
            kinds.setdefault("images", spec)  # baselines are RGB split-brain networks
        if name in seen:
            raise SettingError(
                "weights", literal(f"two rows named {name!r} ({seen[name]} and {spec}); name "
                                   f"each row as NAME=W, e.g. {name}-2={model}"),
            )  # fmt: skip
        seen[name] = spec
    if not kinds:
        raise SettingError("weights", "no models to compare")
    if len(kinds) > 1:
        listing = ", ".join(f"{spec} reads {kind}" for kind, spec in kinds.items())
        raise SettingError("weights", literal(f"{listing}; compare them in separate runs"))
    return next(iter(kinds))


def match_baselines(
    specs: Sequence[str],
    preset: str | None = None,
    geometry: tuple[int | None, int | None] | None = (None, None),
) -> tuple[list[str], tuple[int | None, int | None]]:
    """(specs, (crop, resize)): baselines compared with weights files are built like them.

    At their width unless they name their own (a 0.5-wide network against a 1.0-wide random
    one says little about pre-training), said in one line each, or a warning when the files'
    widths differ. ``geometry`` is the (crop, resize) the images are cut at, None where the
    networks' own: when neither is given, nor ``preset``, and the files share a geometry at
    the baselines' preset, every model is at that geometry. ``geometry=None`` (a task that
    cuts frames of its own size) leaves the baselines at their preset's.
    """
    files = [model for _, model in map(split_name, specs) if parse_baseline(model) is None]
    widths = sorted({width_of(read_config(model)) for model in files})
    matched, presets = [], set()
    for spec in specs:
        name, model = split_name(spec)
        baseline = parse_baseline(model)
        if baseline is not None:
            presets.add(baseline[1])
        if baseline is None or names_width(model) or not widths or widths == [baseline[2]]:
            matched.append(spec)
        elif len(widths) == 1:
            model_at = f"{model}:{widths[0]:g}"
            log.info("%s: built at width %g, the width of %s (%s:1 for the full width)",
                     model, widths[0], files[0], model)  # fmt: skip
            matched.append(f"{name}={model_at}" if name != model else model_at)
        else:
            log.warning("%s is %g wide, the weights files %s: give it a width (%s:WIDTH) to "
                        "compare like with like", model, baseline[2],
                        ", ".join(f"{w:g}" for w in widths), model)  # fmt: skip
            matched.append(spec)
    if geometry is None:
        return matched, (None, None)
    geometries = {(g["preset"], g["resize"], g["crop"]) for g in map(read_geometry, files)}
    if preset or any(geometry) or len(geometries) != 1 or not presets:
        return matched, geometry
    ((files_preset, resize, crop),) = geometries
    if presets != {files_preset}:
        return matched, geometry
    log.info("every model at the weights files' geometry: resize %d, crop %d", resize, crop)
    return matched, (crop, resize)
