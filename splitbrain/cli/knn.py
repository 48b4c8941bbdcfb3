"""``splitbrain knn``: weighted kNN classification on pooled frozen features (a health check)."""

from __future__ import annotations

import argparse

from ..models import SplitBrain
from .common import UsageError, examples, positive, precision
from .evaluation import (
    add_eval_arguments,
    check_common,
    column_order,
    data_settings,
    evaluate_models,
    open_data,
    write_tables,
)


def register(sub: argparse._SubParsersAction) -> list[argparse.ArgumentParser]:
    p = sub.add_parser(
        "knn",
        help="kNN classification on pooled frozen features",
        description="Classify each test image by its k nearest training images (cosine "
        "similarity of spatially averaged layer activations, votes weighted by "
        "exp(similarity / T), Wu et al. 2018 / DINO). No training: one pass of each network "
        "over the data. Writes knn.json, knn.md and knn.png in --out.",
    )
    p.epilog = examples(
        "splitbrain knn --weights runs/demo/weights.safetensors gaussian:small --data skimage:",
        "splitbrain knn --weights a=runs/a/weights.safetensors b=W.safetensors --data folder:~/x",
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
    return [p]


def _capped(ks: tuple[int, ...], items: int) -> tuple[int, ...]:
    """Neighbour counts of at most ``items`` (the training images), said when one is cut."""
    capped = tuple(dict.fromkeys(min(k, items) for k in ks))
    if capped != ks:
        print(f"--k: {items:,} training images are the neighbours, so k is "
              f"{', '.join(map(str, capped))} (asked: {', '.join(map(str, ks))})")  # fmt: skip
    return capped


def run(args: argparse.Namespace) -> int:
    from ..evaluate import Table, knn_evaluate

    layers = check_common(args)
    try:
        ks = tuple(int(k) for k in args.k.split(","))
    except ValueError:
        raise UsageError(f"--k: expected comma-separated numbers, got {args.k!r}") from None
    if not ks or min(ks) < 1:
        raise UsageError(f"--k: neighbour counts must be positive, got {args.k!r}")
    data = open_data(args)
    ks = _capped(ks, len(data.train))
    chosen = precision(args, args.accelerator, "--accelerator")

    def knn(name: str, model: SplitBrain):
        return knn_evaluate(
            model, data, layers, ks, args.temperature, args.batch_size, args.workers,
            args.accelerator, args.crop, args.resize, name, chosen,
        )  # fmt: skip

    def report(done: list, final: bool) -> None:
        results = [result for result, _ in done]
        columns = column_order([list(r.top1[ks[0]]) for r in results])
        tables = [
            Table(f"top-1 k={k} (%)", columns, {r.name: r.top1[k] for r in results}) for k in ks
        ]
        if any(r.top5 for r in results):
            tables += [
                Table(f"top-5 k={k} (%)", columns, {r.name: r.top5[k] for r in results}) for k in ks
            ]
        settings = {
            **data_settings(args),
            "precision": chosen,
            "k": list(ks),
            "temperature": args.temperature,
            "features": "spatial average, unit length, cosine similarity",
            "classes": data.num_classes,
        }
        models = [
            {"name": r.name, "train_items": r.train_items, "test_items": r.test_items}
            for r in results
        ]
        plotted = tables[: len(ks)]
        write_tables(args, "knn", "kNN classification", tables, settings, models, plotted, final)

    evaluate_models(args, data, knn, report)
    return 0
