"""What the evaluation commands (probe, knn, finetune) share: their arguments, their data, and
the comparison they run (``evaluate.engine``), its tables printed.

``splitbrain.evaluate`` (and with it Lightning, three seconds of imports) is imported where a
command runs, not when the parser is built: ``--help`` and argument errors stay fast.
"""

from __future__ import annotations

import argparse
from typing import TYPE_CHECKING, Any

from ..models import CONV_LAYERS, FC_LAYERS, PRESETS
from .common import UsageError, add_precision_argument, positive

if TYPE_CHECKING:
    from ..evaluate import Comparison, LabelledData, Task

ALL_LAYERS = (*CONV_LAYERS, *FC_LAYERS)


def add_eval_arguments(
    p: argparse.ArgumentParser, layers: str | None, out: str, batch: int, more_data: str = ""
) -> None:
    """Models, data, layers (unless ``layers`` is None), output and machinery: the same in
    every evaluation command; ``more_data`` names data that only this command reads."""
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
        "stl10:, npz:, skimage:, shards:); its train split is used. Channel-split models read "
        "labelled npz or TIFF stacks, RGB-D models labelled RGB-D frames (npz:, nyu:, ...)"
        + more_data,
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
    p.add_argument(
        "--out", default=out,
        help=f"run folder (default {out}); the same command again resumes it, or, finished, "
        "prints its table; a finished one made with other settings is kept and a new folder "
        "made beside it, unless --overwrite",
    )  # fmt: skip
    p.add_argument("--overwrite", action="store_true", help="replace the report in --out")
    p.add_argument(
        "--batch-size",
        type=positive(int),
        default=batch,
        help=f"images per batch (default {batch})",
    )
    p.add_argument(
        "--crop",
        type=positive(int),
        help="image side (default: the crop the weights files record, else the preset's input)",
    )
    p.add_argument(
        "--resize",
        type=positive(int),
        help="shorter side before cropping (default: the resize the weights files record)",
    )
    p.add_argument("--workers", type=int, default=2, help="data loader processes")
    p.add_argument(
        "--accelerator", default="auto", choices=["auto", "cpu", "gpu"],
        help="where to run (auto: a GPU when there is one)",
    )  # fmt: skip
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
    p.add_argument(
        "--max-items", type=positive(int), metavar="N",
        help="a quick trial: N items of each split, evenly spread (every class keeps some; "
        "default: all of them)",
    )  # fmt: skip
    p.add_argument(
        "--seed", type=int, default=0, help="seed of the fit, the crops and the baselines"
    )
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
    """Reject nonsensical common arguments and models that cannot be opened, all before any
    work; returns the --layers list (None: all)."""
    from ..evaluate.baselines import check_models

    if args.workers < 0:
        raise UsageError(f"--workers must be 0 or more, got {args.workers}")
    if not 0 <= args.max_bad_fraction <= 1:
        raise UsageError("--max-bad-fraction must be between 0 and 1")
    if args.crop and args.resize and args.resize < args.crop:
        raise UsageError(f"--resize {args.resize} is smaller than --crop {args.crop}")
    layers = parse_layers(args.layers) if hasattr(args, "layers") else None
    args.data_kind = check_models(args.weights)
    return layers


def open_data(args: argparse.Namespace, labelled: bool = True) -> LabelledData:
    from ..evaluate import LabelledData

    data = LabelledData.open(
        args.data,
        args.test_data,
        args.download,
        args.max_bad_fraction,
        not args.no_progress,
        labelled,
        args.max_items,
        args.data_kind,
    )
    print(data.describe())
    return data


def described(args: argparse.Namespace) -> dict[str, Any]:
    """What the data is, for a comparison's settings: the specs and the subset of a trial."""
    settings = {
        "data": args.data,
        "test_data": args.test_data or f"{args.data} (test split)",
        "max_items": args.max_items,
    }
    if args.max_items:
        settings["subset"] = f"a trial: {args.max_items:,} items of each split, evenly spread"
    return settings


def run_comparison(args: argparse.Namespace, task: Task) -> Comparison:
    """``task`` on every --weights model in --out, its tables printed at the end."""
    from ..evaluate import compare

    comparison = compare(task, args.weights, args.out, args.seed, args.preset, args.overwrite)
    for table in comparison.tables:
        print(table.text())
    paths = comparison.paths
    print(f"report: {paths['json']}, {paths['md']}, {paths['png']}")
    return comparison
