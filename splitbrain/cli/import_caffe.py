"""``splitbrain import-caffe``: the authors' released Caffe weights as a splitbrain weights file."""

from __future__ import annotations

import argparse
from pathlib import Path

from .common import UsageError, examples


def register(sub: argparse._SubParsersAction) -> list[argparse.ArgumentParser]:
    p = sub.add_parser(
        "import-caffe",
        help="convert the authors' released split-brain .caffemodel (no Caffe needed)",
        description="Read MODEL.caffemodel and the deploy prototxt it goes with (deploy_lab."
        "prototxt or deploy.prototxt of richzhang/splitbrainauto) and write the equivalent "
        "splitbrain model (two towers, preset caffe: 227 px, fc6/fc7 at 6x6) as safetensors, "
        "recording the caffemodel's SHA-256. Evaluate it like any weights file, e.g. "
        "splitbrain probe --weights W. The released files hold no prediction heads: the model "
        "gives features, not colours. See docs/INTEROP.md.",
    )
    p.epilog = examples(
        "splitbrain import-caffe splitbrain.caffemodel --prototxt deploy_lab.prototxt \\",
        "    --out W.safetensors",
    )
    p.add_argument("caffemodel", help="the .caffemodel file")
    p.add_argument("--prototxt", required=True, help="its deploy .prototxt")
    p.add_argument("--out", required=True, help="the .safetensors file to write")
    p.add_argument(
        "--full-width", action="store_true",
        help="one full-width Lab network instead of two towers (for files whose halves are "
        "joined by non-zero weights)",
    )  # fmt: skip
    return [p]


def run(args: argparse.Namespace) -> int:
    from ..inference.caffe_import import import_caffe
    from ..models import count_parameters, input_geometry
    from ..weights import save

    if not args.out.endswith(".safetensors"):
        raise UsageError(f"--out {args.out}: the file name must end in .safetensors")
    for path in (args.caffemodel, args.prototxt):  # in the order the command line names them
        if not Path(path).is_file():
            raise FileNotFoundError(f"{path}: no such file")
    model, source = import_caffe(args.caffemodel, args.prototxt, args.full_width)
    resize, crop = input_geometry("caffe")  # the released network's 227 px crops
    geometry = {"preset": "caffe", "resize": resize, "crop": crop}
    path = save(model, args.out, {"source": source, "geometry": geometry})
    print(
        f"{path}: variant {model.config.variant}, preset caffe, "
        f"{count_parameters(model):,} parameters, from {source}"
    )
    return 0
