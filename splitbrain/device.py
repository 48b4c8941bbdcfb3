"""The torch device a user names (``cpu``, ``gpu``/``cuda``, or ``auto``: a GPU when there is
one, with a one-line error when the machine has no such device), and the precision it runs at
by default: bf16 autocast where the device computes bfloat16 natively, fp32 elsewhere."""

from __future__ import annotations

import torch

from .errors import SettingError


def device_for(name: str, setting: str = "device") -> torch.device:
    """The device ``name`` means; ``setting``: the configuration field it came from, which
    an error names (``SettingError``)."""
    if name in ("gpu", "cuda"):
        if not torch.cuda.is_available():
            raise SettingError(
                setting, "no GPU here (torch sees no CUDA device); use {setting} cpu", name
            )
        return torch.device("cuda")
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name == "cpu":
        return torch.device("cpu")
    raise SettingError(setting, "unknown device; choose cpu, gpu or auto", name)


PRECISIONS = ("32-true", "bf16-mixed")


def native_bf16(device: torch.device) -> bool:
    """Whether the device computes bfloat16 matrix products and convolutions natively: GPUs
    that support it, CPUs with AVX512-BF16 or AMX (as oneDNN reports)."""
    if device.type == "cuda":
        return torch.cuda.is_available() and torch.cuda.is_bf16_supported()
    probe = getattr(torch.ops.mkldnn, "_is_mkldnn_bf16_supported", None)
    return device.type == "cpu" and bool(probe and probe())


def default_precision(device: torch.device) -> tuple[str, str]:
    """(Lightning precision, why): bf16 autocast where the device computes bfloat16 natively
    (about twice the fp32 speed of convolutions), fp32 elsewhere."""
    if native_bf16(device):
        return "bf16-mixed", f"this {device.type.upper()} computes bfloat16 natively"
    return "32-true", f"this {device.type.upper()} has no native bfloat16"


def resolve_precision(requested: str | None, device: torch.device) -> tuple[str, str]:
    """The precision to run at and why: ``requested`` when given, else the device's default."""
    if requested:
        return requested, "asked for"
    return default_precision(device)


def autocast(device: torch.device, precision: str):
    """The autocast context of ``precision`` for code that runs outside Lightning."""
    return torch.autocast(device.type, dtype=torch.bfloat16, enabled=precision == "bf16-mixed")
