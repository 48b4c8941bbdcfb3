"""``splitbrain prepare``: a dataset resized once into shards, for loaders that must feed a GPU."""

from __future__ import annotations

import argparse
from pathlib import Path

from .common import UsageError, examples, int_range, positive


def register(sub: argparse._SubParsersAction) -> list[argparse.ArgumentParser]:
    p = sub.add_parser(
        "prepare",
        help="write a dataset as shards of pre-resized JPEGs (faster loading)",
        description="Decode every image of DATA once, shrink its shorter side to --side and "
        "write it as a JPEG into webdataset tar shards under OUT/SPLIT, with an index for "
        "random access. Train on it with --data shards:OUT: the same samples in the same "
        "order as any source, several times fewer CPU cycles per image when the originals are "
        "larger than --side (docs/PERFORMANCE.md). Bad files are skipped and counted.",
    )
    p.epilog = examples(
        "splitbrain prepare folder:~/imagenet ~/imagenet-shards --splits train val",
        "splitbrain pretrain --data shards:~/imagenet-shards --preset paper --devices 4",
    )
    p.add_argument("data", help="FORMAT:PATH of RGB images (folder:, cifar10:, stl10:, ...)")
    p.add_argument("out", help="the folder to write (one subfolder per split)")
    p.add_argument("--splits", nargs="+", default=["train"], metavar="SPLIT", help="default: train")
    p.add_argument(
        "--side", type=positive(int), default=256,
        help="shorter side of the stored images, px; at least the --resize you train with "
        "(default 256, the paper's)",
    )  # fmt: skip
    p.add_argument(
        "--quality", type=int_range(1, 100), default=95, metavar="1-100",
        help="JPEG quality (default 95)",
    )  # fmt: skip
    p.add_argument("--shard-images", type=positive(int), default=4096, help="images per shard")
    p.add_argument("--workers", type=positive(int), help="encoding processes (default: all cores)")
    p.add_argument("--download", action="store_true", help="fetch cifar10/cifar100/stl10 first")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    return [p]


def run(args: argparse.Namespace) -> int:
    from ..data import open_source
    from ..data.shards import prepare

    if not 1 <= args.quality <= 100:
        raise UsageError(f"--quality {args.quality}: must be between 1 and 100")
    for split in args.splits:
        source = open_source(args.data, split=split, download=args.download)
        out = Path(args.out) / split
        meta = prepare(
            source, out, args.side, args.quality, args.shard_images, args.workers,
            not args.no_progress,
        )  # fmt: skip
        skipped = sum(meta["skipped"].values())
        print(
            f"{out}: {meta['images']:,} images in {len(meta['shards'])} shards "
            f"({meta['bytes'] / 2**20:,.1f} MB), {skipped:,} skipped, "
            f"{meta['seconds']:.0f} s ({meta['images'] / max(meta['seconds'], 1e-9):,.0f} img/s)"
        )
    print(f"train on it with --data shards:{args.out}")
    return 0
