"""What the evaluation commands (probe, knn, finetune) share: their arguments, their data,
the models they compare, and the report they write (JSON, markdown, PNG, a printed table).

``splitbrain.evaluate`` (and with it Lightning, three seconds of imports) is imported where a
command runs, not when the parser is built: ``--help`` and argument errors stay fast.
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

from ..models import CONV_LAYERS, FC_LAYERS, PRESETS, SplitBrain
from .common import UsageError, add_precision_argument, positive

if TYPE_CHECKING:
    from ..evaluate import LabelledData, Table

ALL_LAYERS = (*CONV_LAYERS, *FC_LAYERS)
Result = TypeVar("Result")


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
        "stl10:, npz:, skimage:, shards:); its train split is used",
    )
    p.add_argument(
        "--test-data", metavar="SPEC", help="test images (default: the test split of --data)"
    )
    add_preset_argument(p)
    add_precision_argument(p)
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


def add_preset_argument(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--preset",
        choices=list(PRESETS),
        help="rebuild weights files at this geometry: transfer evaluates paper weights at the "
        "paper's 227 px protocol (default: the preset they were trained at)",
    )


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


def open_data(args: argparse.Namespace, labelled: bool = True) -> LabelledData:
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


def evaluate_models(
    args: argparse.Namespace, data: LabelledData, evaluate: Callable[[str, SplitBrain], Result]
) -> list[tuple[Result, float]]:
    """``evaluate(name, model)`` for every ``--weights`` model (a file or a baseline), in
    order, each with the seconds its model took to load (or to build and initialise)."""
    from ..evaluate import open_model

    results = []
    for spec in args.weights:
        start = time.perf_counter()
        name, model = open_model(spec, data, args.seed, args.preset)
        opened = time.perf_counter() - start
        results.append((evaluate(name, model), opened))
    return results


def data_settings(args: argparse.Namespace) -> dict[str, str]:
    """The data entries of a report's settings."""
    return {"data": args.data, "test data": args.test_data or f"{args.data} (test split)"}


def write_tables(
    args: argparse.Namespace,
    command: str,
    title: str,
    tables: list[Table],
    settings: dict[str, Any],
    models: list[dict[str, Any]],
    plotted: list[Table] | None = None,
) -> int:
    """The report of one evaluation command in ``--out``, and its tables on the terminal.
    ``models`` are the per-model records, in the order of ``--weights``."""
    from ..evaluate import write_report

    meta = {
        "command": command,
        "settings": settings,
        "models": [
            {"name": m["name"], "weights": spec, **m}
            for m, spec in zip(models, args.weights, strict=True)
        ],
    }
    paths = write_report(Path(args.out), command, title, tables, meta, plotted)
    for table in tables:
        print(table.text())
    print(f"report: {paths['json']}, {paths['md']}, {paths['png']}")
    return 0
