"""``splitbrain pretrain``: pre-train any variant on unlabeled images, CPU to GPU cluster."""

from __future__ import annotations

import argparse
import logging
from pathlib import Path
from typing import TYPE_CHECKING

from ..init import INITS
from ..models import PRESETS
from ..splits import BUILTIN as SPLITS
from ..splits import get_split
from ..variants import VARIANTS
from .common import UsageError, examples, intrinsics, positive

log = logging.getLogger("splitbrain.cli")

if TYPE_CHECKING:
    from ..train import TrainConfig

# With no --data, the offline demo: crops of the photographs inside the scikit-image wheel.
DEMO = {
    "data": "skimage:",
    "preset": "small",
    "crop": 64,
    "width": 0.5,
    "steps": 250,
    "batch_size": 32,
}


def register(sub: argparse._SubParsersAction) -> list[argparse.ArgumentParser]:
    p = sub.add_parser(
        "pretrain",
        help="pre-train a split-brain (or baseline) network on unlabeled images",
        description="Pre-train a variant of the paper on unlabeled images. With no --data, "
        "runs the offline demo: the photographs bundled with scikit-image, cut into random "
        f"crops ({DEMO['steps']} steps of {DEMO['batch_size']} at {DEMO['crop']} px, preset "
        f"small, width {DEMO['width']}). Re-running the same command on the same --out resumes it.",
        epilog=examples(
            "splitbrain pretrain --out runs/demo",
            "splitbrain pretrain --data folder:~/photos --preset paper --epochs 30 "
            "--out runs/photos",
        ),
    )
    p.add_argument(
        "--data",
        help="FORMAT:PATH: folder:, cifar10:, cifar100:, stl10:, npz:, "
        "skimage:[N], shards: (from `splitbrain prepare`; FORMAT may be left out where the path "
        "tells it); default: the offline demo on the photographs inside scikit-image",
    )
    p.add_argument(
        "--variant",
        default="splitbrain",
        choices=list(VARIANTS),
        help="what to train (default: splitbrain, the (cl,cl) split-brain network)",
    )
    p.add_argument(
        "--preset",
        choices=list(PRESETS),
        help="network geometry: paper (180 px), transfer (227 px), caffe (227 px), small "
        "(32-96 px); default: chosen from the data (small when the median shorter side is at "
        "most 96 px, paper above)",
    )
    p.add_argument(
        "--split",
        default="lab",
        help=f"channel split: {', '.join(SPLITS)}, or channels:A/B[:...] for any C-channel "
        "npz or TIFF data (docs/CHANNELS.md)",
    )
    p.add_argument(
        "--width",
        type=positive(float),
        help="channel-count multiplier of every layer (default 1: the paper's)",
    )
    p.add_argument(
        "--init",
        default="gaussian",
        choices=INITS,
        help="weight initialisation (kraehenbuehl: data-dependent)",
    )
    p.add_argument(
        "--init-from", metavar="W",
        help="start from a weights file (the towers must match this run's; prediction heads "
        "that differ keep their initialisation, and the log names them; default: --init)",
    )  # fmt: skip
    p.add_argument("--out", default="runs/splitbrain", help="run directory")
    length = p.add_mutually_exclusive_group()
    length.add_argument(
        "--epochs", type=positive(float),
        help=f"passes over the data (default 1; the demo: {DEMO['steps']} steps)",
    )  # fmt: skip
    length.add_argument("--steps", type=positive(int), help="optimiser steps (default: --epochs)")
    p.add_argument(
        "--batch-size",
        type=positive(int),
        help="global batch size, whatever the device count (default 80)",
    )
    p.add_argument(
        "--lr",
        type=positive(float),
        help="base learning rate (default 3e-5 for paper/transfer, 1e-3 for small)",
    )
    p.add_argument("--weight-decay", type=float, default=1e-3, help="Adam's weight decay")
    p.add_argument(
        "--crop", type=positive(int),
        help=f"training crop side (default: the preset's input, 180 for paper, 32 for small; "
        f"the demo: {DEMO['crop']})",
    )  # fmt: skip
    p.add_argument(
        "--resize", type=positive(int),
        help="shorter side before cropping (default: the preset's, 256 for paper, 36 for small)",
    )  # fmt: skip
    p.add_argument(
        "--resize-max",
        type=positive(int),
        help="scale jittering: each image's shorter side drawn from --resize..this (curbs "
        "memorising a few thousand photographs; docs/DESIGN.md; default: no jittering)",
    )
    p.add_argument(
        "--soft-targets",
        action="store_true",
        help="ECCV16 soft encoding (5 nearest bins) instead of 1-hot targets",
    )
    p.add_argument(
        "--rebalance",
        nargs="?",
        const=0.5,
        type=positive(float),
        metavar="MIX",
        help="ECCV16 class rebalancing of classification targets: weights from the bins' "
        "empirical prior mixed MIX with uniform (default 0.5 when given; off by default, as "
        "in the split-brain paper)",
    )
    p.add_argument("--accelerator", default="auto", help="cpu, gpu, auto")
    p.add_argument("--devices", default="auto", help="devices per node (a number or auto)")
    p.add_argument("--nodes", type=positive(int), default=1, help="number of nodes")
    p.add_argument(
        "--precision",
        help="Lightning precision, e.g. 32-true (default: bf16-mixed where the device computes "
        "bfloat16 natively, GPUs and CPUs with AVX512-BF16 or AMX; 32-true elsewhere)",
    )
    p.add_argument("--sync-batchnorm", action="store_true", help="SyncBatchNorm across devices")
    p.add_argument("--workers", type=int, default=2, help="data loader processes per device")
    p.add_argument(
        "--checkpoint-every", type=positive(int), default=500, metavar="STEPS",
        help="steps between checkpoints (default 500); a stop signal (SIGTERM, SIGINT, "
        "SIGUSR1) also writes one at the step reached before the run exits",
    )  # fmt: skip
    p.add_argument(
        "--keep-checkpoints", type=positive(int), default=2,
        help="the newest checkpoints kept; a resume falls back to an older one when the newest "
        "does not load (default 2)",
    )  # fmt: skip
    p.add_argument(
        "--max-bad-fraction",
        type=float,
        default=0.01,
        help="stop before training if more of the data than this is unreadable",
    )
    p.add_argument(
        "--intrinsics", type=intrinsics, metavar="FX,FY,CX,CY",
        help="--split rgbd: the camera in pixels (0-based centres), over what the files say "
        "(default: the files', else a Kinect-like camera)",
    )  # fmt: skip
    p.add_argument(
        "--max-items", type=positive(int), metavar="N",
        help="a quick trial on N items of the data, evenly spread (part of the recipe; "
        "default: all of them)",
    )  # fmt: skip
    p.add_argument(
        "--download",
        action="store_true",
        help="download cifar10/cifar100/stl10 from the official address",
    )
    p.add_argument(
        "--resume",
        action="store_true",
        help="require a checkpoint in --out to continue from (it is used anyway when present)",
    )
    p.add_argument(
        "--probe-every",
        type=positive(int),
        metavar="N",
        help="kNN probe (conv5, k=20) every N steps and at the end, to TensorBoard (default: none)",
    )
    p.add_argument(
        "--probe-data",
        metavar="SPEC",
        help="labelled data of the kNN probe: its train split are the neighbours, "
        "its test split the queries (needed by --probe-every; default: none)",
    )
    p.add_argument(
        "--requeue", action="store_true",
        help="under SLURM: when a stop signal interrupts the run, requeue the job "
        "(scontrol requeue) after writing the checkpoint; it resumes when it starts again",
    )  # fmt: skip
    p.add_argument(
        "--seed", type=int, default=0, help="the sample stream's and initialisation's seed"
    )
    p.add_argument(
        "--no-progress", action="store_true",
        help="no progress display (a bar on a terminal, a plain line every 30 s in a file)",
    )  # fmt: skip
    p.add_argument("--quiet", action="store_true", help="print only errors and the final summary")
    return [p]


def config_from_args(args: argparse.Namespace) -> TrainConfig:
    demo = args.data is None
    defaults = DEMO if demo else {}
    devices = args.devices if args.devices == "auto" else int(args.devices)
    try:
        get_split(args.split)
    except ValueError as error:
        raise UsageError(f"--split: {error}") from None
    if args.probe_every and not args.probe_data:
        raise UsageError("--probe-every needs --probe-data")
    if args.split != "lab" and args.data is None:
        raise UsageError(f"--split {args.split} needs --data (the built-in data is RGB photos)")
    if args.workers < 0:
        raise UsageError(f"--workers must be 0 or more, got {args.workers}")
    if args.intrinsics and get_split(args.split).space.data != "rgbd":
        raise UsageError("--intrinsics is for RGB-D data (--split rgbd)")
    if args.init_from and args.init != "gaussian":
        raise UsageError("--init-from and --init kraehenbuehl exclude each other")
    if not 0 <= args.max_bad_fraction <= 1:
        raise UsageError("--max-bad-fraction must be between 0 and 1")
    if args.rebalance is not None and args.rebalance > 1:
        raise UsageError(f"--rebalance: the mix with uniform is at most 1, got {args.rebalance}")
    from ..train import TrainConfig  # Lightning loads once the arguments are found sound

    steps = args.steps or (None if args.epochs else defaults.get("steps"))
    preset = args.preset or defaults.get("preset") or preset_from_data(args)
    return TrainConfig(
        data=args.data or DEMO["data"],
        out=args.out,
        variant=args.variant,
        preset=preset,
        split=args.split,
        width=args.width or defaults.get("width", 1.0),
        init=args.init,
        init_from=args.init_from,
        epochs=args.epochs,
        steps=steps,
        batch_size=args.batch_size or defaults.get("batch_size", 80),
        lr=args.lr,
        weight_decay=args.weight_decay,
        soft_targets=args.soft_targets,
        rebalance=args.rebalance,
        crop=args.crop or defaults.get("crop"),
        resize=args.resize,
        resize_max=args.resize_max,
        accelerator=args.accelerator,
        devices=devices,
        nodes=args.nodes,
        precision=args.precision,
        sync_batchnorm=args.sync_batchnorm,
        workers=args.workers,
        seed=args.seed,
        checkpoint_every=args.checkpoint_every,
        keep_checkpoints=args.keep_checkpoints,
        probe_every=args.probe_every,
        probe_data=args.probe_data,
        max_bad_fraction=args.max_bad_fraction,
        max_items=args.max_items,
        intrinsics=args.intrinsics,
        download=args.download,
        progress=not (args.no_progress or args.quiet),
        requeue=args.requeue,
    )


def preset_from_data(args: argparse.Namespace) -> str:
    """Without --preset: the preset that fits the images of --data (``train.data.preset_for``),
    said in one line; RGB-D data keeps the paper's."""
    from ..rgbd.sources import open_data
    from ..train.data import preset_for

    kind = get_split(args.split).space.data
    if kind == "rgbd":
        return "paper"
    preset, why = preset_for(open_data(args.data, kind, "train", args.download))
    log.info("preset: %s (%s; --preset chooses another)", preset, why)
    return preset


def run(args: argparse.Namespace) -> int:
    if args.devices != "auto" and not args.devices.isdigit():
        raise UsageError(f"--devices must be a number or auto, got {args.devices!r}")
    config = config_from_args(args)
    from ..runs.checkpoints import checkpoints
    from ..train import pretrain

    if args.resume and not checkpoints(Path(config.out) / "checkpoints"):
        raise UsageError(f"--resume: no checkpoint in {config.out}/checkpoints to resume from")
    weights = pretrain(config)
    if args.data is None:  # the demo: what to try next
        log.info(
            "next: colour photographs of your own with these weights, and see what their "
            "features tell apart against random weights of the same width:\n"
            "  splitbrain colorize --weights %s PHOTOS --out coloured/\n"
            "  splitbrain knn --weights %s gaussian:small --data skimage:",
            weights, weights,
        )  # fmt: skip
    return 0
