"""``splitbrain colorize``: colour photographs at their full resolution with a model's L->ab
half."""

from __future__ import annotations

import argparse

from ..colorize import DECODINGS
from .common import add_precision_argument, examples, int_range, positive, precision


def register(sub: argparse._SubParsersAction) -> list[argparse.ArgumentParser]:
    p = sub.add_parser(
        "colorize",
        help="colour photographs (black-and-white or not) at their full resolution",
        description="Colorize image files, folders (recursive) and glob patterns into --out, "
        "keeping their names (a folder maps to a folder). The network sees the image's "
        "lightness with its shorter side at --side; the output keeps the original's own "
        "lightness at its full size, with the predicted colour upsampled to it. Colour inputs "
        "are colorized from their lightness alone. Unreadable or too small files are skipped, "
        "named and counted.",
    )
    p.epilog = examples(
        "splitbrain colorize --weights runs/demo/weights.safetensors old_photos/ --out coloured/",
        "splitbrain colorize --weights W.safetensors 'album/*.jpg' --out c/ --format jpeg",
    )
    p.add_argument("inputs", nargs="+", metavar="INPUT", help="image files, folders or globs")
    p.add_argument("--weights", required=True, help="a weights file with an L->ab cl half")
    p.add_argument(
        "--out", required=True,
        help="output folder, never read as input (when it holds a colorization of these "
        "inputs already, the new ones go to a folder beside it, OUT-2, unless --overwrite)",
    )  # fmt: skip
    p.add_argument(
        "--overwrite", action="store_true", help="replace earlier colorizations in --out"
    )
    p.add_argument(
        "--side",
        type=positive(int),
        help="shorter side the network sees (default: the pre-training resize the weights "
        "file records, else the preset's: 256 for paper)",
    )
    p.add_argument(
        "--temperature",
        type=positive(float),
        help="annealed-mean temperature (default: the weights file's, 0.38 unless it records "
        "another)",
    )
    p.add_argument(
        "--decode",
        choices=DECODINGS,
        help="how bins become a colour (default: the weights file's, annealed unless it "
        "records another)",
    )
    p.add_argument(
        "--side-by-side",
        action="store_true",
        help="write grey | colorized | original (when the input had colour) side by side",
    )
    p.add_argument(
        "--format", choices=["png", "jpg"], default="png", type=_image_format,
        help="output format, png or jpg (jpeg)",
    )  # fmt: skip
    p.add_argument(
        "--quality",
        type=int_range(1, 95),
        default=90,
        metavar="1-95",
        help="JPEG quality (default 90)",
    )
    p.add_argument(
        "--batch-size", type=positive(int), default=8,
        help="images of one size per batch, at most",
    )  # fmt: skip
    p.add_argument(
        "--batch-megapixels", type=positive(float), default=4.0, metavar="MP",
        help="pixels per batch, at most, in megapixels: memory is bounded by it, and a larger "
        "photo goes alone; each photo is written as soon as its batch is done",
    )  # fmt: skip
    p.add_argument("--device", default="auto", help="cpu, gpu or auto (default)")
    add_precision_argument(p)
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    return [p]


def _image_format(text: str) -> str:
    """png or jpg, in any case; jpeg is jpg."""
    text = text.lower()
    return "jpg" if text == "jpeg" else text


def run(args: argparse.Namespace) -> int:
    from ..colorize import require_colorizer
    from ..device import device_for
    from ..inference import ColorizeSettings, colorize_files
    from ..weights import load

    model = load(args.weights).to(device_for(args.device))
    require_colorizer(model)
    side = args.side or model.geometry()[0]
    settings = ColorizeSettings(
        side=side,
        temperature=args.temperature,
        decode=args.decode,
        batch_size=args.batch_size,
        batch_megapixels=args.batch_megapixels,
        side_by_side=args.side_by_side,
        format=args.format,
        quality=args.quality,
        progress=not args.no_progress,
        precision=precision(args, "device"),
        overwrite=args.overwrite,
    )
    outcome = colorize_files(model, args.inputs, args.out, settings)
    print(outcome.summary())
    if outcome.written:
        rate = outcome.megapixels / outcome.seconds
        print(f"output: {outcome.out} ({outcome.megapixels:.2f} megapixels, {rate:.2f} MP/s)")
    return 0 if outcome.written or not outcome.inputs else 1
