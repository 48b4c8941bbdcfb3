"""``splitbrain info W``: what a weights file holds, without building anything by hand."""

from __future__ import annotations

import argparse
from typing import Any

from ..models import count_parameters
from ..weights import load, read_provenance
from .common import examples


def register(sub: argparse._SubParsersAction) -> list[argparse.ArgumentParser]:
    parser = sub.add_parser("info", help="describe a weights file")
    parser.epilog = examples(
        "splitbrain info runs/demo/weights.safetensors",
        "splitbrain info owner/name",
    )
    parser.add_argument(
        "weights", help="a .safetensors file written by splitbrain, a model folder or hub name"
    )
    return [parser]


def run(args: argparse.Namespace) -> int:
    model = load(args.weights)
    config = model.config
    print(
        f"{args.weights}: variant {config.variant}, split {config.split.name}, "
        f"preset {config.preset}, {count_parameters(model):,} parameters"
    )
    for encoder in model.encoders:
        spec = encoder.spec
        targets = ", ".join(f"{t.name} ({t.loss})" for t in spec.half.targets)
        print(f"  {spec.half.name}: width {spec.width}, inputs {spec.half.inputs} -> {targets}")
    print(f"  layers: {', '.join(model.layer_names)}")
    for line in provenance_lines(read_provenance(args.weights)):
        print(line)
    return 0


def readable(value: Any) -> str:
    """One value on one line: a float to 4 significant digits (a score's 19.744173587976743 is
    19.74; 12345.6 is 12346, not 1.235e+04), null (an undefined score) as ``-``, a list's
    items joined, without Python's quotes."""
    if isinstance(value, float):
        return f"{value:.4g}" if abs(value) < 1e4 else f"{value:.0f}"
    if value is None:
        return "-"
    if isinstance(value, dict):
        return "{" + ", ".join(f"{k}: {readable(v)}" for k, v in value.items()) + "}"
    if isinstance(value, list):
        return "[" + ", ".join(readable(v) for v in value) + "]"
    return str(value)


def provenance_lines(provenance: dict[str, Any], indent: int = 2) -> list[str]:
    """``key: value`` lines in the file's order; a dict's entries on lines of their own,
    indented under its key, at any depth."""
    pad, lines = " " * indent, []
    for key, value in provenance.items():
        if isinstance(value, dict):
            lines += [f"{pad}{key}:", *provenance_lines(value, indent + 2)]
        elif isinstance(value, list):
            lines.append(f"{pad}{key}: {', '.join(readable(v) for v in value)}")
        else:
            lines.append(f"{pad}{key}: {readable(value)}")
    return lines
