"""``splitbrain probe``: the paper's linear probe on frozen layers, one table for many models."""

from __future__ import annotations

import argparse

from .common import examples, positive, precision
from .evaluation import (
    add_eval_arguments,
    add_sgd_arguments,
    check_common,
    described,
    open_data,
    run_comparison,
)


def register(sub: argparse._SubParsersAction) -> list[argparse.ArgumentParser]:
    p = sub.add_parser(
        "probe",
        help="linear probes on frozen layers (the paper's protocol)",
        description="Train a linear classifier on each chosen layer of frozen networks (resized "
        "bilinearly to about 9,000 dimensions, frozen-statistics BatchNorm, SGD with step "
        "decay) and report top-1 per layer on the test split: a table, probe.json, probe.md "
        "and probe.png in --out. With --cache-features the trunk runs once over un-augmented "
        "images and the heads train on cached features (much faster on a CPU).",
    )
    p.epilog = examples(
        "splitbrain probe --weights runs/demo/weights.safetensors gaussian:small --data skimage:",
        "splitbrain probe --weights W.safetensors --data cifar10:~/data --layers all",
    )
    add_eval_arguments(p, "conv1,conv2,conv3,conv4,conv5", "runs/probe", 256)
    add_sgd_arguments(p, epochs=30)
    p.add_argument(
        "--cache-features",
        action="store_true",
        help="run the trunk once over un-augmented images and train on cached "
        "float16 features (no augmentation)",
    )
    p.add_argument(
        "--cache-dir",
        help="where the feature cache goes while the probe runs (default: system temporary folder)",
    )
    p.add_argument(
        "--stats-images",
        type=positive(int),
        default=10_000,
        help="augmented mode: training images the BatchNorm statistics are "
        "estimated from (default 10000; cached mode uses all)",
    )
    return [p]


def run(args: argparse.Namespace) -> int:
    from ..evaluate import ProbeConfig, ProbeTask

    layers = check_common(args)
    config = ProbeConfig(
        layers=tuple(layers) if layers else None,
        epochs=args.epochs,
        lr=args.lr,
        batch_size=args.batch_size,
        weight_decay=args.weight_decay,
        cache_features=args.cache_features,
        crop=args.crop,
        resize=args.resize,
        stats_images=args.stats_images,
        workers=args.workers,
        accelerator=args.accelerator,
        seed=args.seed,
        progress=not args.no_progress,
        cache_dir=args.cache_dir,
        precision=precision(args, "accelerator"),
    )
    data = open_data(args)
    print(f"mode: {config.mode}")
    run_comparison(args, ProbeTask(data, config, described(args)))
    print(f"\nmode: {config.mode}")
    return 0
