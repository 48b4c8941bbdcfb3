"""Weights files: safetensors with the model's full configuration in the metadata.

A weights file rebuilds its model from the file alone (no pickle, so a stranger's file cannot
execute code), and is written atomically so a crash never leaves half a file behind. Model
folders in the Hugging Face convention and hub names (``owner/name``) hold such a file, and
load through the same functions (``hub.py`` knows the convention).
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
from .errors import NonFiniteError, WeightsFileError
from .jsontext import json_text
from .models import ModelConfig, SplitBrain, input_geometry

log = logging.getLogger("splitbrain.weights")

FORMAT = "splitbrain/1"


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


def save_pretrained(model: SplitBrain, folder: str | os.PathLike, name: str | None = None) -> Path:
    """Write ``folder`` in the Hugging Face convention, to upload as it is (``hf upload``):
    ``model.safetensors`` (``save``'s file, which alone still loads), ``config.json`` (its
    metadata, parsed) and a model card ``README.md`` whose examples load ``name`` (default
    ``OWNER/`` and the folder's name). Each file is written atomically; returns the folder."""
    from . import hub

    folder = Path(folder)
    path = save(model, folder / hub.WEIGHTS)
    hub.describe(folder, model, record_of(path), name or f"OWNER/{folder.resolve().name}")
    return folder


def weights_file(source: str | os.PathLike) -> Path:
    """The weights file that ``source`` names: a file itself, the one in a model folder
    (``save_pretrained``), or the one of a Hugging Face Hub name ``owner/name``, fetched into
    the hub's cache (a local path wins over a name). A WeightsFileError says what else it is."""
    path = Path(source)
    if path.is_file():  # the common case, without importing huggingface_hub
        return path
    from . import hub

    text = os.fspath(source)
    if (path / hub.WEIGHTS).is_file():
        return _folder_weights(path, text)
    if path.is_dir():
        inside = path / "weights.safetensors"
        if inside.exists():
            raise WeightsFileError(f"{path} is a run folder; use {inside}")
        raise WeightsFileError(
            f"{path} is a folder, neither a weights file nor a model folder ({hub.WEIGHTS})"
        )
    if hub.is_name(text):
        return _folder_weights(hub.download(text), text)
    raise WeightsFileError(
        f"{text}: no such file" + ("" if path.suffix else ", folder or hub name (owner/name)")
    )


def _folder_weights(folder: Path, shown: str) -> Path:
    """A model folder's weights file, once its config.json (if any) is found to agree with
    it: the file's metadata is what loads, so an edited config.json is refused, not ignored."""
    from . import hub

    path = folder / hub.WEIGHTS
    read_config(path)  # a splitbrain weights file, or the error that says why not
    if hub.read_record(folder, shown) not in (None, record_of(path)):
        raise WeightsFileError(
            f"{shown}: its {hub.CONFIG} disagrees with {hub.WEIGHTS}, whose metadata is what "
            "loads; write the folder again (splitbrain export --hub) rather than edit it"
        )
    return path


def record_of(path: str | os.PathLike) -> dict[str, Any]:
    """A splitbrain weights file's metadata as a model folder's config.json holds it, parsed."""
    metadata = read_metadata(path)
    return {
        "format": metadata["format"],
        "config": json.loads(metadata["config"]),
        "provenance": json.loads(metadata.get("provenance", "{}")),
    }


def read_provenance(path: str | os.PathLike) -> dict[str, Any]:
    """What made a weights file, as ``save`` recorded it ({} when nothing was recorded)."""
    return json.loads(read_metadata(path).get("provenance", "{}"))


def _checkpoint(path: Path) -> str:
    """What to load instead of a training checkpoint."""
    run = path.parent.parent / "weights.safetensors"
    hint = f"use {run}" if run.exists() else "use the weights.safetensors of its run folder"
    return f"{path} is a training checkpoint; {hint}"


def read_metadata(path: str | os.PathLike) -> dict[str, str]:
    """The metadata of a safetensors file (``config``, ``format``, ``provenance`` if set);
    ``path`` may be anything ``weights_file`` takes."""
    path = weights_file(path)
    if path.suffix == ".ckpt":
        raise WeightsFileError(_checkpoint(path))
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
    ``path`` may also be a model folder or a hub name ``owner/name`` (``weights_file``).

    ``preset`` rebuilds it at another geometry with the same weights: ``transfer`` evaluates
    a model pre-trained at the ``paper`` preset at the paper's 227 px transfer geometry (and
    back). Only presets whose layers have the same shapes can share weights; another gives a
    WeightsFileError naming the first layer that differs.
    """
    path = weights_file(path)
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
    model.provenance = _with_geometry(read_provenance(path), path, saved)
    return model.to(device)


def read_geometry(path: str | os.PathLike) -> dict[str, Any]:
    """The pre-training geometry of a weights file (preset, resize, crop), as ``load`` gives
    it to the model: recorded in the file, else by the rule of ``_with_geometry``."""
    path = weights_file(path)
    return _with_geometry(read_provenance(path), path, read_config(path).preset)["geometry"]


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
