"""``splitbrain probe``: the paper's linear probe on frozen layers, one table for many models."""

from __future__ import annotations

import argparse

from ..models import SplitBrain
from .common import examples, positive, precision
from .evaluation import (
    add_eval_arguments,
    add_sgd_arguments,
    check_common,
    column_order,
    data_settings,
    evaluate_models,
    open_data,
    write_tables,
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
    from ..evaluate import ProbeConfig, Table, linear_probe
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
        precision=precision(args, args.accelerator, "--accelerator"),
    )
    data = open_data(args)
    print(f"mode: {config.mode}")

    def probe(name: str, model: SplitBrain):
        result = linear_probe(model, data, config, name)
        scores = ", ".join(f"{k} {v:.1f}" for k, v in result.top1.items())
        print(f"{name}: {scores} ({result.seconds['total']:.0f} s)")
        return result

    def report(done: list, final: bool) -> None:
        results = []
        for result, opened in done:
            result.seconds["model"] = opened  # loading, or building and initialising a baseline
            results.append(result)
        columns = column_order([list(r.top1) for r in results])
        tables = [Table("top-1 (%)", columns, {r.name: r.top1 for r in results})]
        if any(r.top5 for r in results):
            tables.append(Table("top-5 (%)", columns, {r.name: r.top5 for r in results}))
        settings = {
            "mode": config.mode,
            **data_settings(args),
            "precision": config.precision,
            "epochs": config.epochs,
            "lr": config.lr,
            "batch size": config.batch_size,
            "weight decay": config.weight_decay,
            "classes": data.num_classes,
            "seed": config.seed,
        }
        models = [
            {
                "name": r.name,
                "grids": describe_grids(r.grids),
                "train_items": r.train_items,
                "test_items": r.test_items,
                "seconds": {k: round(v, 1) for k, v in r.seconds.items()},
            }
            for r in results
        ]
        if final:
            print(f"\nmode: {config.mode}")
        write_tables(args, "probe", "Linear probe", tables, settings, models, final=final)

    evaluate_models(args, data, probe, report)
    return 0
