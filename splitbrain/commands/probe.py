"""``splitbrain probe``: the paper's linear probe on frozen layers, one table for many models.

The arguments shared by the evaluation commands (probe, knn, finetune) are defined here.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

from ..cli import UsageError, positive
from ..models import CONV_LAYERS, FC_LAYERS

ALL_LAYERS = (*CONV_LAYERS, *FC_LAYERS)


def add_eval_arguments(
    p: argparse.ArgumentParser, layers: str | None, out: str, batch: int
) -> None:
    """Models, data, layers (unless ``layers`` is None), output and machinery: the same in
    every evaluation command."""
    p.add_argument(
        "--weights",
        nargs="+",
        required=True,
        metavar="W",
        help="weights files, or baselines gaussian:PRESET[:WIDTH] and "
        "init:kraehenbuehl:PRESET[:WIDTH]; NAME=W names a row of the table",
    )
    p.add_argument(
        "--data",
        required=True,
        metavar="SPEC",
        help="labelled training images, FORMAT:PATH (folder:, cifar10:, cifar100:, "
        "stl10:, npz:, skimage:); its train split is used",
    )
    p.add_argument(
        "--test-data", metavar="SPEC", help="test images (default: the test split of --data)"
    )
    if layers is not None:
        p.add_argument(
            "--layers",
            default=layers,
            help=f"comma-separated layers, or 'all' for every layer a model has (default {layers})",
        )
    p.add_argument("--out", default=out, help=f"folder for the report (default {out})")
    p.add_argument(
        "--batch-size",
        type=positive(int),
        default=batch,
        help=f"images per batch (default {batch})",
    )
    p.add_argument(
        "--crop", type=positive(int), help="image side (default: the preset's input, 32 for small)"
    )
    p.add_argument(
        "--resize",
        type=positive(int),
        help="shorter side before cropping (default: pre-training's, 36 for small)",
    )
    p.add_argument("--workers", type=int, default=2, help="data loader processes")
    p.add_argument("--accelerator", default="auto", choices=["auto", "cpu", "gpu"])
    p.add_argument(
        "--max-bad-fraction",
        type=float,
        default=0.01,
        help="stop if more of the data than this is unreadable",
    )
    p.add_argument(
        "--download",
        action="store_true",
        help="download cifar10/cifar100/stl10 from the official address",
    )
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--no-progress", action="store_true", help="no progress bars")


def add_sgd_arguments(p: argparse.ArgumentParser, epochs: int) -> None:
    """The SGD schedule of the probe and fine-tuning: epochs, learning rate, weight decay."""
    p.add_argument(
        "--epochs",
        type=positive(int),
        default=epochs,
        help=f"passes over the training images (default {epochs})",
    )
    p.add_argument(
        "--lr",
        type=positive(float),
        default=0.01,
        help="learning rate, x0.1 after 2/7, 4/7 and 6/7 of the run (default 0.01)",
    )
    p.add_argument("--weight-decay", type=float, default=5e-4, help="default 5e-4")


def parse_layers(text: str) -> list[str] | None:
    """The --layers list; None for 'all'."""
    if text == "all":
        return None
    layers = [name.strip() for name in text.split(",") if name.strip()]
    unknown = [name for name in layers if name not in ALL_LAYERS]
    if unknown or not layers:
        named = ", ".join(unknown) if unknown else repr(text)
        raise UsageError(
            f"--layers: unknown layer {named}; choose from {', '.join(ALL_LAYERS)} or all"
        )
    return layers


def check_common(args: argparse.Namespace) -> list[str] | None:
    """Reject nonsensical common arguments; returns the --layers list (None: all)."""
    if args.workers < 0:
        raise UsageError(f"--workers must be 0 or more, got {args.workers}")
    if not 0 <= args.max_bad_fraction <= 1:
        raise UsageError("--max-bad-fraction must be between 0 and 1")
    if args.crop and args.resize and args.resize < args.crop:
        raise UsageError(f"--resize {args.resize} is smaller than --crop {args.crop}")
    return parse_layers(args.layers) if hasattr(args, "layers") else None


def open_data(args: argparse.Namespace, labelled: bool = True):
    from ..evaluate import LabelledData

    data = LabelledData.open(
        args.data,
        args.test_data,
        args.download,
        args.max_bad_fraction,
        not args.no_progress,
        labelled,
    )
    print(data.describe())
    return data


def column_order(per_model: list[list[str]]) -> list[str]:
    """Every layer any model was evaluated on, in network order."""
    present = {name for layers in per_model for name in layers}
    return [name for name in ALL_LAYERS if name in present]


def register(sub: argparse._SubParsersAction) -> argparse.ArgumentParser:
    p = sub.add_parser(
        "probe",
        help="linear probes on frozen layers (the paper's protocol)",
        description="Train a linear classifier on each chosen layer of frozen networks (resized "
        "bilinearly to about 9,000 dimensions, frozen-statistics BatchNorm, SGD with step "
        "decay) and report top-1 per layer on the test split: a table, probe.json, probe.md "
        "and probe.png in --out. With --cache-features the trunk runs once over un-augmented "
        "images and the heads train on cached features (much faster on a CPU).",
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
    return p


def run(args: argparse.Namespace) -> int:
    from ..evaluate import ProbeConfig, Table, linear_probe, open_model, write_report
    from ..evaluate.features import describe_grids

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
    )
    data = open_data(args)
    print(f"mode: {config.mode}")
    results = []
    for spec in args.weights:
        start = time.perf_counter()
        name, model = open_model(spec, data, args.seed)
        built = time.perf_counter() - start
        result = linear_probe(model, data, config, name)
        result.seconds["model"] = built  # loading, or building and initialising a baseline
        results.append(result)
        print(
            f"{name}: {', '.join(f'{k} {v:.1f}' for k, v in result.top1.items())} "
            f"({result.seconds['total']:.0f} s)"
        )
    columns = column_order([list(r.top1) for r in results])
    tables = [Table("top-1 (%)", columns, {r.name: r.top1 for r in results})]
    if any(r.top5 for r in results):
        tables.append(Table("top-5 (%)", columns, {r.name: r.top5 for r in results}))
    meta = {
        "command": "probe",
        "settings": {
            "mode": config.mode,
            "data": args.data,
            "test data": args.test_data or f"{args.data} (test split)",
            "epochs": config.epochs,
            "lr": config.lr,
            "batch size": config.batch_size,
            "weight decay": config.weight_decay,
            "classes": data.num_classes,
            "seed": config.seed,
        },
        "models": [
            {
                "name": r.name,
                "weights": spec,
                "grids": describe_grids(r.grids),
                "train_items": r.train_items,
                "test_items": r.test_items,
                "seconds": {k: round(v, 1) for k, v in r.seconds.items()},
            }
            for r, spec in zip(results, args.weights, strict=True)
        ],
    }
    paths = write_report(Path(args.out), "probe", "Linear probe", tables, meta)
    print(f"\nmode: {config.mode}")
    for table in tables:
        print(table.text())
    print(f"report: {paths['json']}, {paths['md']}, {paths['png']}")
    return 0
