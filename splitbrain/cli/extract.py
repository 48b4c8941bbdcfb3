"""``splitbrain extract``: features of every image of a data source, to one file."""

from __future__ import annotations

import argparse
from pathlib import Path

from ..extract import POOLS
from .common import UsageError, add_precision_argument, examples, positive, precision
from .evaluation import add_preset_argument, parse_layers


def register(sub: argparse._SubParsersAction) -> list[argparse.ArgumentParser]:
    p = sub.add_parser(
        "extract",
        help="features of every image of a data source, to a safetensors or npz file",
        description="Run a model over every image of --data (centre crops at its pre-training "
        "geometry) and write the chosen layers' features to --out (.safetensors or .npz: one "
        "(N, ...) float32 tensor per layer, 'labels' (N,) with -1 where an image has none, "
        "'index' (N,) the item's index in the data), streamed to disk batch by batch, and a "
        "CSV beside it of row, index, label and name (the file, for folders). Unreadable "
        "images are skipped, named and counted.",
    )
    p.epilog = examples(
        "splitbrain extract --weights W.safetensors --data skimage: --out features.safetensors",
        "splitbrain extract --weights W.safetensors --data folder:~/photos --out f.npz",
    )
    p.add_argument("--weights", required=True, help="a weights file")
    add_preset_argument(p)
    p.add_argument(
        "--data",
        required=True,
        metavar="SPEC",
        help="FORMAT:PATH (folder:, cifar10:, cifar100:, stl10:, npz:, skimage:; npz: and "
        "tiff: for channel models; npz:, nyu:, pairs:, tum:, sun: for RGB-D models)",
    )
    p.add_argument(
        "--data-split",
        default="train",
        help="which split of --data (train, test, val, unlabeled; default train)",
    )
    p.add_argument("--layers", default="conv5", help="comma-separated layers (default conv5)")
    p.add_argument(
        "--pool",
        choices=POOLS,
        default="avg",
        help="avg: mean over space (N, C); paper: the probe's bilinear resize to about 9,000 "
        "dimensions; none: the activation (N, C, h, w) (default avg)",
    )
    p.add_argument(
        "--out", required=True,
        help="output file, .safetensors or .npz (an existing one is kept and the new one "
        "written beside it, NAME-2, unless --overwrite)",
    )  # fmt: skip
    p.add_argument("--overwrite", action="store_true", help="replace an existing --out")
    p.add_argument("--crop", type=positive(int), help="image side (default: pre-training's)")
    p.add_argument(
        "--resize", type=positive(int),
        help="shorter side before the crop (default: pre-training's)",
    )  # fmt: skip
    p.add_argument("--batch-size", type=positive(int), default=128, help="images per batch")
    p.add_argument(
        "--max-items", type=positive(int), metavar="N",
        help="a quick trial: N items of the data, evenly spread (default: all of them)",
    )  # fmt: skip
    p.add_argument("--workers", type=int, default=2, help="data loader processes")
    p.add_argument("--device", default="auto", help="cpu, gpu or auto (default)")
    add_precision_argument(p)
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    return [p]


def run(args: argparse.Namespace) -> int:
    from ..device import device_for
    from ..inference import extract_to_file
    from ..inference.extract_files import SUFFIXES
    from ..outputs import keep_earlier
    from ..rgbd.sources import open_data
    from ..weights import load

    layers = parse_layers(args.layers)
    if not args.out.endswith(SUFFIXES):
        raise UsageError(f"--out {args.out}: write features to .safetensors or .npz")
    if args.workers < 0:
        raise UsageError(f"--workers must be 0 or more, got {args.workers}")
    model = load(args.weights, preset=args.preset).to(device_for(args.device))
    layers = layers or model.layer_names
    missing = [name for name in layers if name not in model.layer_names]
    if missing:
        raise UsageError(f"--layers: the model has no {', '.join(missing)}")
    space = model.split.space
    source = open_data(args.data, space.data, args.data_split, max_items=args.max_items)
    print(f"data: {source.describe()}")
    resize, crop = model.geometry(args.crop, args.resize)

    def holds(path: Path) -> bool:
        return path.exists() or path.with_suffix(".csv").exists()

    out = keep_earlier(Path(args.out), args.overwrite, holds, "features file")
    outcome = extract_to_file(
        model, source, layers, out, args.pool, args.batch_size, args.workers, crop, resize,
        not args.no_progress, precision(args, "device"),
    )  # fmt: skip
    rate = outcome.rows / outcome.seconds
    print(
        f"{outcome.skipped}; {outcome.rows:,} rows of {', '.join(layers)} ({args.pool}) "
        f"in {outcome.seconds:.1f} s, {rate:,.0f} images/s"
    )
    print(f"features: {outcome.path}\nrows: {outcome.csv}")
    return 0
