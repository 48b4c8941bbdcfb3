"""``splitbrain info W``: what a weights file holds, without building anything by hand."""

from __future__ import annotations

import argparse

from ..models import count_parameters
from ..weights import load, read_provenance
from .common import examples


def register(sub: argparse._SubParsersAction) -> list[argparse.ArgumentParser]:
    parser = sub.add_parser("info", help="describe a weights file")
    parser.epilog = examples(
        "splitbrain info runs/demo/weights.safetensors",
    )
    parser.add_argument("weights", help="a .safetensors file written by splitbrain")
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
    for key, value in read_provenance(args.weights).items():
        print(f"  {key}: {value}")
    return 0
