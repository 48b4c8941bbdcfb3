"""``splitbrain export``: a trained network as an ONNX graph, to run outside Python, or as a
model folder in the Hugging Face convention, to share on the hub."""

from __future__ import annotations

import argparse
from pathlib import Path

from .common import UsageError, examples, positive
from .evaluation import add_preset_argument, parse_layers


def register(sub: argparse._SubParsersAction) -> list[argparse.ArgumentParser]:
    p = sub.add_parser(
        "export",
        help="write a network as an ONNX graph, or as a model folder for the Hugging Face Hub",
        description="Export --weights as ONNX with a dynamic batch and image size. features: "
        "RGB in [0, 1] (N,3,H,W) -> the chosen layers of both halves (N,C,h,w), one output "
        "each. colorizer: RGB in [0, 1] (N,3,H,W) or L in [0, 100] (N,1,H,W) -> the predicted "
        "ab on the network's grid, or the colorized RGB at the input's size. Needs the "
        "onnxscript package; run the result with onnxruntime. Or, with --hub, write a model "
        "folder in the Hugging Face convention (config.json, model.safetensors, a model card "
        "README.md) to upload with `hf upload OWNER/NAME DIR`; sb.load and --weights take the "
        "folder, and OWNER/NAME once uploaded.",
    )
    p.epilog = examples(
        "splitbrain export --weights W.safetensors --onnx features.onnx --layers conv5,fc7",
        "splitbrain export --weights W.safetensors --onnx colour.onnx --what colorizer",
        "splitbrain export --weights W.safetensors --hub splitbrain-demo --hub-name me/demo",
    )
    p.add_argument("--weights", required=True, help="a weights file, model folder or hub name")
    add_preset_argument(p)
    out = p.add_mutually_exclusive_group(required=True)
    out.add_argument(
        "--onnx", metavar="OUT",
        help="the .onnx file to write (an existing one is kept and the new one written beside "
        "it, NAME-2.onnx, unless --overwrite)",
    )  # fmt: skip
    out.add_argument(
        "--hub", metavar="DIR",
        help="the model folder to write (an existing one is kept and the new one written "
        "beside it, DIR-2, unless --overwrite)",
    )  # fmt: skip
    p.add_argument(
        "--hub-name", metavar="OWNER/NAME",
        help="--hub: the hub name the model card's examples load (default: OWNER/ and the "
        "folder's name)",
    )  # fmt: skip
    p.add_argument("--overwrite", action="store_true", help="replace an existing output")
    p.add_argument(
        "--what", choices=["features", "colorizer"], default="features",
        help="the graph: the chosen layers' features, or the colorizer",
    )  # fmt: skip
    p.add_argument("--layers", default="conv5", help="features: comma-separated layers")
    p.add_argument("--takes", choices=["rgb", "L"], default="rgb", help="colorizer input")
    p.add_argument("--gives", choices=["rgb", "ab"], default="rgb", help="colorizer output")
    p.add_argument(
        "--temperature", type=positive(float),
        help="colorizer: the annealed mean's temperature (default: the weights file's, 0.38 "
        "unless it records another)",
    )  # fmt: skip
    return [p]


def run(args: argparse.Namespace) -> int:
    from ..hub import is_name
    from ..inference import export_onnx
    from ..outputs import keep_earlier
    from ..weights import load, save_pretrained

    if args.hub_name and not args.hub:
        raise UsageError("--hub-name names the model of a --hub folder; add --hub DIR")
    if args.hub_name and not is_name(args.hub_name):
        raise UsageError(f"--hub-name {args.hub_name}: expected OWNER/NAME, a hub name")
    if args.hub:
        model = load(args.weights, preset=args.preset)
        out = keep_earlier(Path(args.hub), args.overwrite, Path.exists, "model folder")
        folder = save_pretrained(model, out, args.hub_name)
        print(f"model folder: {folder} ({', '.join(sorted(p.name for p in folder.iterdir()))})")
        return 0
    layers = parse_layers(args.layers)
    if not args.onnx.endswith(".onnx"):
        raise UsageError(f"--onnx {args.onnx}: the file name must end in .onnx")
    model = load(args.weights, preset=args.preset)
    out = keep_earlier(Path(args.onnx), args.overwrite, Path.exists, "ONNX file")
    path = export_onnx(
        model, out, args.what, layers or model.layer_names, args.takes, args.gives,
        args.temperature,
    )  # fmt: skip
    print(f"onnx: {path} ({path.stat().st_size / 2**20:.1f} MB)")
    return 0
