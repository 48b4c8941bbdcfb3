"""``splitbrain finetune``: fine-tune networks with a new linear head; top-1 or mAP (PASCAL VOC
classification with ``--data voc:DIR``)."""

from __future__ import annotations

import argparse

from .common import UsageError, examples, precision
from .evaluation import (
    ALL_LAYERS,
    add_eval_arguments,
    add_sgd_arguments,
    check_common,
    described,
    open_data,
    run_comparison,
)


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
    voc = (
        "; also voc:DIR, a VOCdevkit year folder (VOC2007, VOC2012): multi-label PASCAL VOC "
        "classification, labels from its Annotations/"
    )
    add_eval_arguments(p, None, "runs/finetune", 128, voc)
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

    from ..data.voc import label_matrix, listing_read
    from ..evaluate import FinetuneConfig, FinetuneTask
    from ..evaluate.finetune import load_targets

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
        precision=precision(args, "accelerator"),
        ten_crop=voc if args.ten_crop is None else args.ten_crop,
    )
    settings = described(args)
    if voc:  # the listing read, which the split's name does not say (VOC 2012 tests on val.txt)
        settings["test_data"] = f"{args.test_data or args.data} ({listing_read(data.test)})"
    run_comparison(args, FinetuneTask(data, config, settings, targets))
    return 0
