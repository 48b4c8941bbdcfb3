"""``splitbrain knn``: weighted kNN classification on pooled frozen features (a health check)."""

from __future__ import annotations

import argparse

from .common import UsageError, examples, positive, precision
from .evaluation import add_eval_arguments, check_common, described, open_data, run_comparison


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
    from ..evaluate import KNNConfig, KNNTask

    layers = check_common(args)
    try:
        ks = tuple(int(k) for k in args.k.split(","))
    except ValueError:
        raise UsageError(f"--k: expected comma-separated numbers, got {args.k!r}") from None
    if not ks or min(ks) < 1:
        raise UsageError(f"--k: neighbour counts must be positive, got {args.k!r}")
    data = open_data(args)
    config = KNNConfig(
        layers=tuple(layers) if layers else None,
        ks=_capped(ks, len(data.train)),
        temperature=args.temperature,
        batch_size=args.batch_size,
        crop=args.crop,
        resize=args.resize,
        workers=args.workers,
        accelerator=args.accelerator,
        precision=precision(args, "accelerator"),
    )
    run_comparison(args, KNNTask(data, config, described(args)))
    return 0
