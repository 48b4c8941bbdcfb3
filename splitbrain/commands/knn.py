"""``splitbrain knn``: weighted kNN classification on pooled frozen features (a health check)."""

from __future__ import annotations

import argparse
from pathlib import Path

from ..cli import UsageError, positive
from .probe import add_eval_arguments, check_common, column_order, open_data


def register(sub: argparse._SubParsersAction) -> argparse.ArgumentParser:
    p = sub.add_parser(
        "knn",
        help="kNN classification on pooled frozen features",
        description="Classify each test image by its k nearest training images (cosine "
        "similarity of spatially averaged layer activations, votes weighted by "
        "exp(similarity / T), Wu et al. 2018 / DINO). No training: one pass of each network "
        "over the data. Writes knn.json, knn.md and knn.png in --out.",
    )
    add_eval_arguments(p, "conv5", "runs/knn", 256)
    p.add_argument(
        "--k", default="20,200", help="comma-separated neighbour counts (default 20,200)"
    )
    p.add_argument(
        "--temperature",
        type=positive(float),
        default=0.07,
        help="vote temperature T (default 0.07)",
    )
    return p


def run(args: argparse.Namespace) -> int:
    from ..evaluate import Table, knn_evaluate, open_model, write_report

    layers = check_common(args)
    try:
        ks = tuple(int(k) for k in args.k.split(","))
    except ValueError:
        raise UsageError(f"--k: expected comma-separated numbers, got {args.k!r}") from None
    if not ks or min(ks) < 1:
        raise UsageError(f"--k: neighbour counts must be positive, got {args.k!r}")
    data = open_data(args)
    results = []
    for spec in args.weights:
        name, model = open_model(spec, data, args.seed)
        results.append(
            knn_evaluate(
                model,
                data,
                layers,
                ks,
                args.temperature,
                args.batch_size,
                args.workers,
                args.accelerator,
                args.crop,
                args.resize,
                name,
            )
        )
    columns = column_order([list(r.top1[ks[0]]) for r in results])
    tables = [Table(f"top-1 k={k} (%)", columns, {r.name: r.top1[k] for r in results}) for k in ks]
    if any(r.top5 for r in results):
        tables += [
            Table(f"top-5 k={k} (%)", columns, {r.name: r.top5[k] for r in results}) for k in ks
        ]
    meta = {
        "command": "knn",
        "settings": {
            "data": args.data,
            "test data": args.test_data or f"{args.data} (test split)",
            "k": list(ks),
            "temperature": args.temperature,
            "features": "spatial average, unit length, cosine similarity",
            "classes": data.num_classes,
        },
        "models": [
            {
                "name": r.name,
                "weights": spec,
                "train_items": r.train_items,
                "test_items": r.test_items,
            }
            for r, spec in zip(results, args.weights, strict=True)
        ],
    }
    paths = write_report(
        Path(args.out), "knn", "kNN classification", tables, meta, plotted=tables[: len(ks)]
    )
    for table in tables:
        print(table.text())
    print(f"report: {paths['json']}, {paths['md']}, {paths['png']}")
    return 0
