"""What the evaluation commands (probe, knn, finetune) share: their arguments, their data,
the models they compare, and the report they write (JSON, markdown, PNG, a printed table).

``splitbrain.evaluate`` (and with it Lightning, three seconds of imports) is imported where a
command runs, not when the parser is built: ``--help`` and argument errors stay fast.
"""

from __future__ import annotations

import argparse
import logging
import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

from ..models import CONV_LAYERS, FC_LAYERS, PRESETS, SplitBrain
from .common import UsageError, add_precision_argument, positive

if TYPE_CHECKING:
    from ..evaluate import LabelledData, Table

ALL_LAYERS = (*CONV_LAYERS, *FC_LAYERS)
log = logging.getLogger("splitbrain.cli")
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
        "stl10:, npz:, skimage:, shards:); its train split is used. Channel-split models read "
        "labelled npz or TIFF stacks, RGB-D models labelled RGB-D frames (npz:, nyu:, ...)",
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
        help=f"folder for the report (default {out}); one that holds a report of this command "
        "is kept and a new folder made beside it, unless --overwrite",
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
    """Reject nonsensical common arguments and models that cannot be opened, and choose the
    report folder, all before any work; returns the --layers list (None: all)."""
    if args.workers < 0:
        raise UsageError(f"--workers must be 0 or more, got {args.workers}")
    if not 0 <= args.max_bad_fraction <= 1:
        raise UsageError("--max-bad-fraction must be between 0 and 1")
    if args.crop and args.resize and args.resize < args.crop:
        raise UsageError(f"--resize {args.resize} is smaller than --crop {args.crop}")
    layers = parse_layers(args.layers) if hasattr(args, "layers") else None
    args.data_kind = check_weights(args.weights)
    match_baselines(args)
    args.out = str(report_folder(Path(args.out), args.command, args.overwrite))
    return layers


def check_weights(specs: list[str]) -> str:
    """Every --weights opens (files: their header; baselines: their spec) and names a row of
    its own, and all read the same kind of data, before any data is read or model evaluated:
    WeightsFileError for a file that is not one, UsageError for the rest. Returns that kind
    (``ChannelSpace.data``: images, channels, rgbd)."""
    from ..evaluate.baselines import parse_baseline, split_name
    from ..weights import read_config

    seen: dict[str, str] = {}
    kinds: dict[str, str] = {}
    for spec in specs:
        name, model = split_name(spec)
        if parse_baseline(model) is None:
            config = read_config(model)  # the header alone; a bad file is bad input (exit 1)
            kinds.setdefault(config.split.space.data, spec)
        else:
            kinds.setdefault("images", spec)  # baselines are RGB split-brain networks
        if name in seen:
            raise UsageError(
                f"--weights: two rows named {name!r} ({seen[name]} and {spec}); name each "
                f"row as NAME=W, e.g. {name}-2={model}"
            )
        seen[name] = spec
    if len(kinds) > 1:
        listing = ", ".join(f"{spec} reads {kind}" for kind, spec in kinds.items())
        raise UsageError(f"--weights: {listing}; evaluate them in separate commands")
    return next(iter(kinds))


def match_baselines(args: argparse.Namespace) -> None:
    """Baselines compared with weights files are built like them: at their width unless they
    name their own (a 0.5-wide network against a 1.0-wide random one says little about
    pre-training), said in one line each, or a warning when the files' widths differ; and,
    without --preset, --crop and --resize, every model at the files' recorded geometry when
    they share one and the baselines their preset."""
    from ..evaluate.baselines import names_width, parse_baseline, split_name
    from ..variants import width_of
    from ..weights import read_config, read_geometry

    files = [model for _, model in map(split_name, args.weights) if parse_baseline(model) is None]
    widths = sorted({width_of(read_config(model)) for model in files})
    geometries = {(g["preset"], g["resize"], g["crop"]) for g in map(read_geometry, files)}
    matched, presets = [], set()
    for spec in args.weights:
        name, model = split_name(spec)
        baseline = parse_baseline(model)
        if baseline is not None:
            presets.add(baseline[1])
        if baseline is None or names_width(model) or not widths or widths == [baseline[2]]:
            matched.append(spec)
        elif len(widths) == 1:
            model_at = f"{model}:{widths[0]:g}"
            log.info("%s: built at width %g, the width of %s (%s:1 for the full width)",
                     model, widths[0], files[0], model)  # fmt: skip
            matched.append(f"{name}={model_at}" if name != model else model_at)
        else:
            log.warning("%s is %g wide, the weights files %s: give it a width (%s:WIDTH) to "
                        "compare like with like", model, baseline[2],
                        ", ".join(f"{w:g}" for w in widths), model)  # fmt: skip
            matched.append(spec)
    args.weights = matched
    if args.preset or args.crop or args.resize or len(geometries) != 1 or not presets:
        return
    ((preset, resize, crop),) = geometries
    if presets == {preset}:
        log.info("every model at the weights files' geometry: resize %d, crop %d", resize, crop)
        args.resize, args.crop = resize, crop


def report_folder(out: Path, command: str, overwrite: bool) -> Path:
    """``out``, or a free folder beside it when it holds a report of ``command`` already."""
    from ..outputs import keep_earlier

    def holds(folder: Path) -> bool:
        return (folder / f"{command}.json").exists()

    return keep_earlier(out, overwrite, holds, f"{command} report")


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


def column_order(per_model: list[list[str]]) -> list[str]:
    """Every layer any model was evaluated on, in network order."""
    present = {name for layers in per_model for name in layers}
    return [name for name in ALL_LAYERS if name in present]


def evaluate_models(
    args: argparse.Namespace,
    data: LabelledData,
    evaluate: Callable[[str, SplitBrain], Result],
    report: Callable[[list[tuple[Result, float]], bool], None],
) -> None:
    """``evaluate(name, model)`` for every ``--weights`` model (a file or a baseline), in
    order, each with the seconds its model took to load (or to build and initialise);
    ``report(done, final)`` writes the report after every model, so that a failure later in
    the list keeps the rows already measured."""
    from ..evaluate import open_model

    results: list[tuple[Result, float]] = []
    for index, spec in enumerate(args.weights):
        start = time.perf_counter()
        name, model = open_model(spec, data, args.seed, args.preset, args.crop, args.resize)
        opened = time.perf_counter() - start
        results.append((evaluate(name, model), opened))
        report(results, index == len(args.weights) - 1)


def data_settings(args: argparse.Namespace) -> dict[str, str]:
    """The data entries of a report's settings, with the subset of a trial (--max-items)."""
    settings = {"data": args.data, "test data": args.test_data or f"{args.data} (test split)"}
    if args.max_items:
        settings["subset"] = f"a trial: {args.max_items:,} items of each split, evenly spread"
    return settings


def write_tables(
    args: argparse.Namespace,
    command: str,
    title: str,
    tables: list[Table],
    settings: dict[str, Any],
    models: list[dict[str, Any]],
    plotted: list[Table] | None = None,
    final: bool = True,
) -> None:
    """The report of one evaluation command in ``--out`` (the models done so far), and when
    ``final`` its tables on the terminal. ``models`` are the per-model records, in the order
    of ``--weights``."""
    from ..evaluate import write_report

    meta = {
        "command": command,
        "settings": settings,
        "models": [
            {"name": m["name"], "weights": spec, **m}
            for m, spec in zip(models, args.weights, strict=False)
        ],
    }
    if args.max_items:
        title += f", a trial on {args.max_items:,} items"
    paths = write_report(Path(args.out), command, title, tables, meta, plotted)
    if final:
        for table in tables:
            print(table.text())
        print(f"report: {paths['json']}, {paths['md']}, {paths['png']}")
