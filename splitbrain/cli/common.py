"""What every subcommand shares: the parser that reports misuse in one line, and argument types."""

from __future__ import annotations

import argparse
import logging
import math
from pathlib import Path

import yaml

from ..device import PRECISIONS, device_for, resolve_precision
from ..models import input_geometry

log = logging.getLogger("splitbrain.cli")


class ArgumentParser(argparse.ArgumentParser):
    """Misuse prints one line and exits with status 2."""

    def error(self, message: str) -> None:
        self.exit(2, f"{self.prog}: error: {message}\n")


class UsageError(Exception):
    """An argument that parsed but makes no sense; reported like a parse error."""


def positive(kind: type):
    """An argparse type for positive numbers of ``kind`` (int or float)."""

    def parse(text: str):
        value = kind(text)
        if not 0 < value < math.inf:
            raise argparse.ArgumentTypeError(f"must be positive and finite, got {text}")
        return value

    parse.__name__ = kind.__name__
    return parse


def intrinsics(text: str) -> tuple[float, float, float, float]:
    """An argparse type for a pinhole camera, FX,FY,CX,CY in pixels (0-based centres)."""
    try:
        values = tuple(float(v) for v in text.split(","))
    except ValueError:
        values = ()
    if len(values) != 4 or min(values[:2]) <= 0:
        raise argparse.ArgumentTypeError(
            f"expected FX,FY,CX,CY in pixels (focal lengths positive), got {text!r}"
        )
    return values


def geometry(weights: str, preset: str, crop: int | None, resize: int | None) -> tuple[int, int]:
    """(resize, crop) for a model's images: the flags, else the pre-training run's config.yaml
    beside the weights (when the model keeps the run's preset: a rebuild at ``transfer`` takes
    the transfer geometry), else the preset's; a crop larger than the resize is a UsageError."""
    saved = Path(weights).parent / "config.yaml"
    config = yaml.safe_load(saved.read_text()) if saved.is_file() else {}
    if config.get("preset") != preset:
        config = {}
    resize, crop = input_geometry(
        preset, crop or config.get("crop"), resize or config.get("resize")
    )
    if not 1 <= crop <= resize:
        raise UsageError(f"need 1 <= --crop <= --resize, got crop {crop}, resize {resize}")
    return resize, crop


def add_precision_argument(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--precision",
        choices=PRECISIONS,
        help="bf16-mixed (bf16 autocast) or 32-true (default: bf16-mixed where the device "
        "computes bfloat16 natively, GPUs and CPUs with AVX512-BF16 or AMX; 32-true elsewhere)",
    )


def precision(args: argparse.Namespace, device_name: str, option: str) -> str:
    """The precision a command runs at (``--precision``, else the device's default), logged
    with the reason."""
    chosen, why = resolve_precision(args.precision, device_for(device_name, option))
    log.info("precision: %s (%s)", chosen, why)
    return chosen
