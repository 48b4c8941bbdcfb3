"""``splitbrain finetune``: fine-tune networks with a new linear head; top-1 or mAP (PASCAL VOC
classification with ``--data voc:DIR``)."""

from __future__ import annotations

import argparse
import math
import re
from pathlib import Path

from ..models import SplitBrain
from .common import UsageError, examples, precision
from .evaluation import (
    ALL_LAYERS,
    add_eval_arguments,
    add_sgd_arguments,
    check_common,
    data_settings,
    evaluate_models,
    open_data,
    write_tables,
)

TEN_CROPS = "10 (corners and centre, each mirrored; mean logits)"
#: The per-class tables of multi-label results: (metric, the FinetuneResult field it shows).
PER_CLASS = (("AP (%)", "per_class_ap"), ("AP (11-point) (%)", "per_class_ap_11point"))


def register(sub: argparse._SubParsersAction) -> list[argparse.ArgumentParser]:
    p = sub.add_parser(
        "finetune",
        help="fine-tune networks with a new linear head (single- or multi-label)",
        description="Fine-tune the whole network, or only the layers above --freeze-through, "
        "with a new linear layer on spatially averaged fc7 features (conv5 where a model has "
        "no fc7). Single-label data is scored by top-1; voc:DIR (a VOCdevkit year folder), or "
        "--targets/--test-targets label matrices, make it multi-label, scored by mean average "
        "precision (area under the precision-recall curve and VOC 2007's 11-point), per class "
        "too. Writes finetune.json, finetune.md and finetune.png in --out.",
    )
    p.epilog = examples(
        "splitbrain finetune --weights runs/demo/weights.safetensors --data skimage:",
        "splitbrain finetune --weights W.safetensors --data cifar10:~/data --freeze-through pool5",
        "splitbrain finetune --weights W.safetensors --data voc:VOCdevkit/VOC2007 "
        "--freeze-through pool5",
    )
    add_eval_arguments(p, None, "runs/finetune", 128)
    p.add_argument(
        "--head-layer",
        choices=ALL_LAYERS,
        help="the layer the new head reads (default fc7, else conv5)",
    )
    p.add_argument(
        "--freeze-through",
        choices=ALL_LAYERS,
        help="freeze this layer and all below it (pool5: the paper's 'fc6-8 only'); "
        "default: train everything",
    )
    add_sgd_arguments(p, epochs=10)
    p.add_argument(
        "--targets",
        metavar="NPY",
        help="multi-label: (training images, classes) .npy matrix of 1 (present), "
        "0 (absent), -1 (ignored), rows in the order of --data's train split (default: "
        "single-label, the data's own labels)",
    )
    p.add_argument(
        "--test-targets",
        metavar="NPY",
        help="the same for the test images (needed with --targets; default: none)",
    )
    p.add_argument(
        "--ten-crop",
        action=argparse.BooleanOptionalAction,
        help="score each test image by its mean logits over 10 crops (corners and centre, "
        "each mirrored) of its centre square, as PASCAL VOC's protocol (default: on for "
        "voc: data, else the centre crop alone)",
    )
    return [p]


def run(args: argparse.Namespace) -> int:
    import torch

    from .. import __version__
    from ..data.voc import label_matrix
    from ..evaluate import FinetuneConfig, Table, finetune
    from ..evaluate.finetune import load_targets
    from ..weights import save

    check_common(args)
    voc = args.data.startswith("voc:")
    if args.test_data and args.test_data.startswith("voc:") != voc:
        raise UsageError("--data and --test-data: voc: data goes with voc: data")
    if voc and (args.targets or args.test_targets):
        raise UsageError("--targets/--test-targets: voc: data takes its labels from Annotations/")
    if bool(args.targets) != bool(args.test_targets):
        raise UsageError("--targets and --test-targets go together")
    multilabel = voc or bool(args.targets)
    data = open_data(args, labelled=not multilabel)
    targets = None
    if voc:
        train, test = label_matrix(data.train), label_matrix(data.test)
        targets = (torch.from_numpy(train), torch.from_numpy(test))
    elif multilabel:
        targets = (
            load_targets(args.targets, len(data.train)),
            load_targets(args.test_targets, len(data.test)),
        )
        if targets[0].shape[1] != targets[1].shape[1]:
            raise UsageError("--targets and --test-targets have different numbers of classes")
    config = FinetuneConfig(
        head_layer=args.head_layer,
        freeze_through=args.freeze_through,
        epochs=args.epochs,
        lr=args.lr,
        batch_size=args.batch_size,
        weight_decay=args.weight_decay,
        crop=args.crop,
        resize=args.resize,
        workers=args.workers,
        accelerator=args.accelerator,
        seed=args.seed,
        progress=not args.no_progress,
        precision=precision(args, args.accelerator, "--accelerator"),
        ten_crop=voc if args.ten_crop is None else args.ten_crop,
    )

    trained = f"above {args.freeze_through}" if args.freeze_through else "all layers"

    def tune(name: str, model: SplitBrain):
        result = finetune(model, data, config, name, targets)
        print(f"{name}: {', '.join(f'{k} {v:.1f}' for k, v in result.scores.items())}")
        resize, crop = model.geometry(args.crop, args.resize)
        geometry = {"preset": model.config.preset, "resize": resize, "crop": crop}
        provenance = {
            "fine-tuned from": name, **data_settings(args), "geometry": geometry,
            "epochs": config.epochs, "head layer": result.head_layer, "trained": trained,
            "splitbrain": __version__,
        }  # fmt: skip
        path = Path(args.out) / (re.sub(r"[^\w.-]+", "_", name) + ".safetensors")
        print(f"fine-tuned weights: {save(result.model, path, provenance)}")
        return result

    def report(done: list, final: bool) -> None:
        results = [result for result, _ in done]
        tables = [
            Table(
                f"{metric} (%)",
                sorted({r.head_layer for r in results}),
                {r.name: {r.head_layer: r.scores[metric]} for r in results},
            )
            for metric in results[0].scores
        ]
        by_class = {r.name: _by_class(r) for r in results} if multilabel else {}
        for metric, kind in PER_CLASS if multilabel else ():
            rows = {name: kinds[kind] for name, kinds in by_class.items()}
            tables.append(Table(metric, list(rows[results[0].name]), rows))
        settings = {
            **data_settings(args),
            "trained": trained,
            "precision": config.precision,
            "epochs": config.epochs,
            "lr": config.lr,
            "batch size": config.batch_size,
            "weight decay": config.weight_decay,
            "seed": config.seed,
            "task": "multi-label (mAP)" if multilabel else f"{data.num_classes} classes",
            "test crops": TEN_CROPS if config.ten_crop else "the centre",
        }
        if multilabel:
            settings["average precision"] = (
                "area under the precision-recall curve (mAP) and VOC 2007's 11-point "
                "interpolation; a class without a positive test image has none (null, '-') "
                "and is left out of the mean"
            )
        models = [
            {
                "name": r.name,
                "head_layer": r.head_layer,
                "scores": r.scores,
                **by_class.get(r.name, {}),
                "train_items": r.train_items,
                "test_items": r.test_items,
                "seconds": {k: round(v, 1) for k, v in r.seconds.items()},
            }
            for r in results
        ]
        write_tables(args, "finetune", "Fine-tuning", tables, settings, models, final=final)

    evaluate_models(args, data, tune, report)
    return 0


def _by_class(result) -> dict[str, dict[str, float | None]]:
    """A multi-label result's per-class APs, in percent by class name (None: no positive test
    image), for each field of ``PER_CLASS``."""
    classes = result.model.config.classifier[1]
    return {
        kind: {
            c: None if math.isnan(ap) else 100.0 * ap
            for c, ap in zip(classes, getattr(result, kind), strict=True)
        }
        for _, kind in PER_CLASS
    }
