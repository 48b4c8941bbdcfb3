"""The torch device a user names: ``cpu``, ``gpu``/``cuda``, or ``auto`` (a GPU when there is
one), with a one-line error when the machine has no such device."""

from __future__ import annotations

import torch


def device_for(name: str, option: str = "--device") -> torch.device:
    """The device ``name`` means; ``option`` is the command-line option it came from."""
    if name in ("gpu", "cuda"):
        if not torch.cuda.is_available():
            raise ValueError(f"{option} {name}: no CUDA device is available")
        return torch.device("cuda")
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name == "cpu":
        return torch.device("cpu")
    raise ValueError(f"unknown device {name!r} for {option}; choose cpu, gpu or auto")
