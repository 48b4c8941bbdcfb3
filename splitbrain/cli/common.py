"""What every subcommand shares: the parser that reports misuse in one line, and argument types."""

from __future__ import annotations

import argparse
import logging
import math
from pathlib import Path
from typing import TYPE_CHECKING

from ..device import PRECISIONS, device_for, resolve_precision

if TYPE_CHECKING:
    import torch

    from ..models import SplitBrain

log = logging.getLogger("splitbrain.cli")


class HelpFormatter(argparse.HelpFormatter):
    """Every option's help states its default (appended unless the text names one, or the
    option is a flag, required or positional); an epilog of examples keeps its lines."""

    def _get_help_string(self, action: argparse.Action) -> str:
        text = action.help or ""
        default = action.default
        quiet = default is None or default is False or default == argparse.SUPPRESS
        quiet = quiet or action.required
        if "default" in text or quiet or not action.option_strings:
            return text
        return f"{text} (default: %(default)s)" if text else "default: %(default)s"

    def _fill_text(self, text: str, width: int, indent: str) -> str:
        if text.startswith("examples:"):
            return "".join(indent + line for line in text.splitlines(keepends=True))
        return super()._fill_text(text, width, indent)


class ArgumentParser(argparse.ArgumentParser):
    """Misuse prints one line and exits with status 2; help states defaults and examples."""

    def __init__(self, *args, **kwargs) -> None:
        kwargs.setdefault("formatter_class", HelpFormatter)
        super().__init__(*args, **kwargs)

    def error(self, message: str) -> None:
        self.exit(2, f"{self.prog}: error: {message}\n")


def examples(*commands: str) -> str:
    """An epilog of example command lines."""
    return "examples:\n" + "".join(f"  {command}\n" for command in commands)


def int_range(low: int, high: int):
    """An argparse type for whole numbers from ``low`` to ``high``, said as a range."""

    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            value = None
        if value is None or not low <= value <= high:
            raise argparse.ArgumentTypeError(f"must be a whole number {low}-{high}, got {text}")
        return value

    parse.__name__ = f"{low}-{high}"
    return parse


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


def add_precision_argument(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--precision",
        choices=PRECISIONS,
        help="bf16-mixed (bf16 autocast) or 32-true (default: bf16-mixed where the device "
        "computes bfloat16 natively, GPUs and CPUs with AVX512-BF16 or AMX; 32-true elsewhere)",
    )


def precision(args: argparse.Namespace, device: str) -> str:
    """The precision a command runs at (``--precision``, else the default of the device that
    the option ``device`` names: ``accelerator`` or ``device``), logged with the reason."""
    chosen, why = resolve_precision(args.precision, device_for(getattr(args, device), device))
    log.info("precision: %s (%s)", chosen, why)
    return chosen


def hold_out_names(value: str) -> list[str]:
    """--hold-out's names: NAME,NAME... or @FILE with one per line (UsageError if none)."""
    if value.startswith("@"):
        path = Path(value[1:])
        try:
            names = path.read_text().split()
        except OSError as error:
            raise UsageError(f"--hold-out {value}: {error.strerror or error}") from None
    else:
        names = [name.strip() for name in value.split(",")]
    names = [name for name in names if name]
    if not names:
        raise UsageError(f"--hold-out {value!r} names no frames")
    return names


def predicting_model(args: argparse.Namespace, head: str, command: str):
    """The one ``--weights`` network a ``--predict`` run uses, on ``--accelerator``, and its
    INPUT photographs in ``args.inputs`` (``--weights`` takes them too when they follow it);
    a UsageError for anything else, a WeightsFileError (bad input) for a network without
    ``head`` (its configuration's ``segmenter``, ``detector``)."""
    if not args.inputs:  # --predict --weights NET PHOTOS: --weights took the photographs too
        args.weights, args.inputs = args.weights[:1], args.weights[1:]
    if len(args.weights) != 1 or not args.inputs:
        raise UsageError(f"--predict takes one --weights {head} and INPUT photographs")
    device = device_for(args.accelerator, "accelerator")
    return load_with_head(args.weights[0], head, command, device)


def load_with_head(path: str, head: str, command: str, device: torch.device) -> SplitBrain:
    """The network at ``path`` on ``device``; a WeightsFileError (bad input) when it has no
    ``head`` (its configuration's ``segmenter``, ``detector``), which ``command`` trains."""
    from ..weights import WeightsFileError, load

    model = load(path).to(device)
    if getattr(model.config, head) is None:
        raise WeightsFileError(f"{path} has no {head}; splitbrain {command} --data trains one")
    return model
