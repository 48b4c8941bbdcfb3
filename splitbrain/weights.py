"""Weights files: safetensors with the model's full configuration in the metadata.

A weights file rebuilds its model from the file alone (no pickle, so a stranger's file cannot
execute code), and is written atomically so a crash never leaves half a file behind.
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Mapping
from dataclasses import replace
from pathlib import Path
from typing import Any

import yaml
from safetensors import SafetensorError, safe_open
from safetensors.torch import save as serialize
from torch import Tensor

from .atomic import atomic_write
from .errors import NonFiniteError
from .jsontext import json_text
from .models import ModelConfig, SplitBrain, input_geometry

log = logging.getLogger("splitbrain.weights")

FORMAT = "splitbrain/1"


class WeightsFileError(ValueError):
    """A file that is not a readable splitbrain weights file."""


def first_non_finite(tensors: Mapping[str, Tensor]) -> str | None:
    """The name of the first floating-point tensor holding a NaN or infinity, or None."""
    for name, tensor in tensors.items():
        if tensor.is_floating_point() and not bool(tensor.isfinite().all()):
            return name
    return None


def save(
    model: SplitBrain, path: str | os.PathLike, provenance: dict[str, Any] | None = None
) -> Path:
    """Write the model's weights and configuration to ``path`` (safetensors), atomically;
    ``provenance`` says what made them (data, geometry, steps, precision, initialisation,
    version, or the file they were converted from; default: the model's own, that of the file
    it was loaded from), and ``splitbrain info`` shows it. The geometry is always recorded
    (the model's, ``SplitBrain.geometry``, when not given), and so is the colour decoding
    (``SplitBrain.decoding``).
    Weights holding a NaN or infinity are refused (NonFiniteError): such a file is useless
    and would replace a good one."""
    tensors = {k: v.detach().contiguous().cpu() for k, v in model.state_dict().items()}
    poisoned = first_non_finite(tensors)
    if poisoned is not None:
        raise NonFiniteError(f"{path}: not written, {poisoned} holds a NaN or infinity")
    metadata = {"format": FORMAT, "config": json_text(model.config.to_dict())}
    provenance = dict(provenance if provenance is not None else model.provenance)
    if "geometry" not in provenance:  # every file says what its images look like
        resize, crop = model.geometry()
        provenance["geometry"] = {"preset": model.config.preset, "resize": resize, "crop": crop}
    if "decoding" not in provenance:  # ... and how its colours are decoded
        decode, temperature = model.decoding()
        provenance["decoding"] = {"decode": decode, "temperature": temperature}
    if provenance:
        metadata["provenance"] = json_text(provenance, default=str)
    data = serialize(tensors, metadata=metadata)  # bytes: a full disk is then an OSError
    return atomic_write(path, lambda tmp: Path(tmp).write_bytes(data))


def read_provenance(path: str | os.PathLike) -> dict[str, Any]:
    """What made a weights file, as ``save`` recorded it ({} when nothing was recorded)."""
    return json.loads(read_metadata(path).get("provenance", "{}"))


def _not_weights(path: Path) -> str | None:
    """What ``path`` is instead of a weights file, with the fix (None: it may be one)."""
    if path.is_dir():
        inside = path / "weights.safetensors"
        if inside.exists():
            return f"{path} is a run folder; use {inside}"
        return f"{path} is a folder, not a weights file"
    if not path.exists():
        return f"{path}: no such file"
    if path.suffix == ".ckpt":
        run = path.parent.parent / "weights.safetensors"
        hint = f"use {run}" if run.exists() else "use the weights.safetensors of its run folder"
        return f"{path} is a training checkpoint; {hint}"
    return None


def read_metadata(path: str | os.PathLike) -> dict[str, str]:
    """The metadata of a safetensors file (``config``, ``format``, ``provenance`` if set)."""
    if problem := _not_weights(Path(path)):
        raise WeightsFileError(problem)
    try:
        with safe_open(str(path), framework="pt") as f:
            return f.metadata() or {}
    except (SafetensorError, OSError, ValueError) as error:
        raise WeightsFileError(f"{path}: not a safetensors weights file ({error})") from None


def read_config(path: str | os.PathLike) -> ModelConfig:
    """The model configuration stored in a weights file."""
    metadata = read_metadata(path)
    if metadata.get("format") != FORMAT or "config" not in metadata:
        raise WeightsFileError(f"{path}: a safetensors file without splitbrain metadata")
    try:
        return ModelConfig.from_dict(json.loads(metadata["config"]))
    except (KeyError, TypeError, ValueError) as error:
        raise WeightsFileError(f"{path}: unreadable model configuration ({error})") from None


def load(path: str | os.PathLike, device: str = "cpu", preset: str | None = None) -> SplitBrain:
    """Rebuild a model from a weights file written by ``save``, in eval mode; its
    ``provenance`` attribute is the file's record of what made it (``read_provenance``).

    ``preset`` rebuilds it at another geometry with the same weights: ``transfer`` evaluates
    a model pre-trained at the ``paper`` preset at the paper's 227 px transfer geometry (and
    back). Only presets whose layers have the same shapes can share weights; another gives a
    WeightsFileError naming the first layer that differs.
    """
    config = read_config(path)
    saved = config.preset
    model = SplitBrain(replace(config, preset=preset or saved))
    with safe_open(str(path), framework="pt", device=device) as f:
        state = {k: f.get_tensor(k) for k in f.keys()}  # noqa: SIM118 (safe_open is no dict)
    for name, wanted in model.state_dict().items():  # in network order
        if preset and name in state and state[name].shape != wanted.shape:
            raise WeightsFileError(
                f"{path}: its {saved} model cannot be rebuilt as {preset}: {name} is "
                f"{tuple(state[name].shape)} in the file and {tuple(wanted.shape)} at "
                f"{preset} (paper and transfer share their layer shapes)"
            )
    try:
        model.load_state_dict(state)
    except RuntimeError as error:
        raise WeightsFileError(
            f"{path}: weights do not match the stored configuration: {str(error).splitlines()[0]}"
        ) from None
    model.provenance = _with_geometry(read_provenance(path), Path(path), saved)
    return model.to(device)


def read_geometry(path: str | os.PathLike) -> dict[str, Any]:
    """The pre-training geometry of a weights file (preset, resize, crop), as ``load`` gives
    it to the model: recorded in the file, else by the rule of ``_with_geometry``."""
    return _with_geometry(read_provenance(path), Path(path), read_config(path).preset)["geometry"]


def _with_geometry(provenance: dict[str, Any], path: Path, preset: str) -> dict[str, Any]:
    """A file's record with its pre-training geometry. Files written before weights recorded
    it take it from the run's config.yaml beside them, else their preset's, and say so."""
    if "geometry" in provenance:
        return provenance
    saved = path.parent / "config.yaml"
    run = yaml.safe_load(saved.read_text()) if saved.is_file() else None
    if isinstance(run, dict) and run.get("preset") == preset and run.get("crop"):
        geometry = {key: run[key] for key in ("preset", "resize", "crop") if key in run}
        log.info("%s records no geometry: the run's, from %s (%s)", path, saved, geometry)
    else:
        resize, crop = input_geometry(preset)
        geometry = {"preset": preset, "resize": resize, "crop": crop}
        log.info("%s records no geometry: its preset's (%s)", path, geometry)
    return {**provenance, "geometry": geometry}
