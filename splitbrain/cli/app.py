"""``splitbrain app``: a local web page that colours photographs, and segments them or boxes their
objects with the networks given (the ``app`` extra, Gradio)."""

from __future__ import annotations

import argparse
import sys
import threading

from ..app.uploads import MAX_MEGAPIXELS
from .common import UsageError, examples, int_range, load_with_head, positive


def register(sub: argparse._SubParsersAction) -> list[argparse.ArgumentParser]:
    p = sub.add_parser(
        "app",
        help="a local web page that colours, segments and detects photographs",
        description="Serve a web page where photographs dropped in come back coloured at their "
        "full size (the PNGs to download), segmented with a legend of the class colours "
        "(--segmenter) and with their objects boxed (--detector). It runs offline and serves "
        "until stopped (Ctrl-C); one batch of photographs is processed at a time and other "
        'visitors wait in a queue. Needs the app extra: pip install "splitbrain[app]".',
    )
    p.epilog = examples(
        "splitbrain app --weights runs/demo/weights.safetensors",
        "splitbrain app --weights W.safetensors --segmenter seg.safetensors "
        "--detector det.safetensors --port 8080",
    )
    p.add_argument("--weights", required=True, help="a weights file with an L->ab cl half")
    p.add_argument(
        "--segmenter",
        help="a network with a segmenter, as splitbrain segment writes (default: none, no masks)",
    )
    p.add_argument(
        "--detector",
        help="a network with a detector, as splitbrain detect writes (default: none, no boxes)",
    )
    p.add_argument(
        "--host", default="127.0.0.1",
        help="address to serve on: 127.0.0.1 keeps the page to this machine, 0.0.0.0 opens it "
        "to the network",
    )  # fmt: skip
    p.add_argument(
        "--port", type=int_range(1, 65535),
        help="port to serve on (default: the first free one from 7860)",
    )  # fmt: skip
    p.add_argument(
        "--max-megapixels", type=positive(float), default=MAX_MEGAPIXELS, metavar="MP",
        help="the largest photograph taken; larger ones are refused with a message",
    )  # fmt: skip
    p.add_argument("--device", default="auto", help="cpu, gpu or auto (default)")
    return [p]


def run(args: argparse.Namespace) -> int:
    from ..app.page import require_gradio, start
    from ..app.photos import Networks
    from ..colorize import require_colorizer
    from ..device import device_for
    from ..weights import load

    try:
        device = device_for(args.device)
        colorizer = load(args.weights).to(device)
        require_colorizer(colorizer)
        networks = Networks(
            colorizer,
            load_with_head(args.segmenter, "segmenter", "segment", device)
            if args.segmenter else None,
            load_with_head(args.detector, "detector", "detect", device)  # needs torchvision
            if args.detector else None,
        )  # fmt: skip
        require_gradio()
    except ImportError as error:
        print(f"splitbrain: error: {error}", file=sys.stderr)
        return 1
    try:
        page = start(networks, args.host, args.port, args.max_megapixels)
    except OSError as error:  # the address or port is taken or cannot be had
        where = f"--host {args.host}" + (f" --port {args.port}" if args.port else "")
        raise UsageError(f"{where}: {str(error).split('. ')[0]}") from None
    print(f"splitbrain app: serving on {page.local_url} (Ctrl-C stops it)", flush=True)
    try:
        threading.Event().wait()  # until a signal ends the command
    finally:
        page.close()
    return 0
