"""``splitbrain segment``: train and score segmentation heads on pre-trained networks and
baselines (one table), or, with ``--predict``, segment photographs with a saved segmenter."""

from __future__ import annotations

import argparse

from ..models import CONV_LAYERS, FC_LAYERS
from ..segmentation import CLASS_WEIGHTS, FRAME_SIDE, HEADS, HYPERCOLUMN_LAYERS
from .common import (
    UsageError,
    add_precision_argument,
    examples,
    hold_out_names,
    positive,
    precision,
    predicting_model,
)
from .evaluation import add_preset_argument, parse_layers

LAYERS = (*CONV_LAYERS, *FC_LAYERS)


def register(sub: argparse._SubParsersAction) -> list[argparse.ArgumentParser]:
    p = sub.add_parser(
        "segment",
        help="semantic segmentation on pre-trained networks (CamVid, VOC, image/mask folders)",
        description="Train a segmentation head on each --weights model (weights files or the "
        "baselines gaussian:PRESET[:WIDTH] and init:kraehenbuehl:PRESET[:WIDTH]) with --data's "
        "train frames and score it on its val frames: pixel accuracy, mean class accuracy, mean "
        "IoU and each class's IoU, from one confusion matrix over the split at the masks' full "
        "size. --head hypercolumn: a per-pixel linear classifier on the frozen trunk's conv1-5 "
        "upsampled to the pixel grid, and on each layer alone; --head fcn32s: FCN-32s "
        "fine-tuned above --freeze-through. Writes segment.{json,md,png}, segment_iou.png, "
        "segment_frames.png and each model's segmenter in --out; run it again to resume. With "
        "--predict: segment the INPUT photographs at their full size with a saved segmenter "
        "(palette PNGs and classes.txt).",
    )
    p.epilog = examples(
        "splitbrain segment --weights W.safetensors init:kraehenbuehl:paper:0.5 --data camvid:DIR",
        "splitbrain segment --predict --weights runs/segment/models/W/W.safetensors frames/ "
        "--out masks/",
    )
    p.add_argument(
        "inputs", nargs="*", metavar="INPUT",
        help="--predict: image files, folders or globs (default: none)",
    )  # fmt: skip
    p.add_argument(
        "--weights", nargs="+", required=True, metavar="W",
        help="weights files or baselines, NAME=W names a row; --predict: one segmenter",
    )  # fmt: skip
    p.add_argument("--predict", action="store_true", help="segment INPUT photographs")
    p.add_argument(
        "--data", metavar="SPEC",
        help="camvid:DIR (SegNet layout), voc:DIR (a VOCdevkit year folder) or masks:DIR "
        "(images/ and masks/ with matching stems, optional classes.txt); its train split trains "
        "(needed to train; default: none)",
    )  # fmt: skip
    p.add_argument(
        "--test-data", metavar="SPEC", help="frames to score (default: --data's --test-split)"
    )
    p.add_argument("--test-split", default="val", choices=["val", "test"], help="the split scored")
    p.add_argument(
        "--hold-out", metavar="NAMES",
        help="score on the frames of these sources, from every split of --data, and train on "
        "all the others: comma-separated names, each a frame's stem or the start of it before "
        "a separator (CamVid: the sequence, 0016E5 for 0016E5_07959), or @FILE listing them "
        "one per line; a split by street, drive or camera, so that the scores say how the "
        "features carry to scenes the heads never saw (default: none, --test-split is scored)",
    )  # fmt: skip
    p.add_argument("--head", choices=HEADS, default="hypercolumn", help="the segmentation head")
    p.add_argument(
        "--layers", default=",".join(HYPERCOLUMN_LAYERS),
        help="hypercolumn: its layers, each also scored alone (all: conv1..conv5)",
    )  # fmt: skip
    p.add_argument(
        "--freeze-through", choices=LAYERS,
        help="fcn32s: freeze this layer and all below it (default: train everything)",
    )  # fmt: skip
    p.add_argument(
        "--resize", type=positive(int),
        help=f"shorter side of frames in training and scoring (default {FRAME_SIDE}: "
        "CamVid's 480x360 at 240x180); --predict: the one the segmenter records",
    )  # fmt: skip
    p.add_argument(
        "--resize-max", type=positive(int),
        help="random scale: each training frame's shorter side drawn from --resize to this "
        "(default 1.5 x --resize)",
    )  # fmt: skip
    p.add_argument("--crop", type=positive(int), default=160, help="training crops' side")
    p.add_argument(
        "--epochs", type=positive(float), default=20, help="passes over the training frames"
    )
    p.add_argument("--batch-size", type=positive(int), default=8, help="frames per step")
    p.add_argument(
        "--lr", type=positive(float), default=0.01,
        help="SGD learning rate, x0.1 after 2/7, 4/7 and 6/7 of the run",
    )  # fmt: skip
    p.add_argument("--weight-decay", type=float, default=5e-4, help="SGD weight decay")
    p.add_argument(
        "--class-weights", choices=CLASS_WEIGHTS, default=CLASS_WEIGHTS[0],
        help="weight the loss by the square root of median frequency (default: rare classes "
        "lifted less), by median frequency (SegNet's CamVid practice), or not",
    )  # fmt: skip
    p.add_argument(
        "--bn-stats", choices=["weights", "target"], default="weights",
        help="the trunk's BatchNorm statistics: its weights' (measured on the pre-training "
        "data) or measured anew on the training frames (target), as the gaussian baseline's are",
    )  # fmt: skip
    add_preset_argument(p)
    add_precision_argument(p)
    p.add_argument(
        "--out", default="runs/segment",
        help="run folder (report, segmenters, checkpoints); the same command again resumes "
        "it, or, finished, prints its table; a finished one made with other settings is kept "
        "and a new folder made beside it unless --overwrite; --predict: the masks' folder",
    )  # fmt: skip
    p.add_argument("--overwrite", action="store_true", help="start --out again from nothing")
    p.add_argument("--overlay", action="store_true", help="--predict: also NAME-overlay.png")
    p.add_argument("--workers", type=int, default=2, help="data loader processes")
    p.add_argument(
        "--accelerator", default="auto", choices=["auto", "cpu", "gpu"], help="where to run"
    )
    p.add_argument(
        "--max-items", type=positive(int), metavar="N",
        help="a quick trial: N frames of each split, evenly spread (default: all)",
    )  # fmt: skip
    p.add_argument(
        "--max-bad-fraction", type=float, default=0.01,
        help="stop if more of the frames than this are unusable",
    )  # fmt: skip
    p.add_argument("--checkpoint-every", type=positive(int), default=100, help="steps")
    p.add_argument("--seed", type=int, default=0, help="seed of the heads, crops and baselines")
    p.add_argument("--no-progress", action="store_true", help="no progress bars")
    return [p]


def _predict(args: argparse.Namespace) -> int:
    from ..segment import segment_files

    model = predicting_model(args, "segmenter", "segment")
    outcome = segment_files(
        model, args.inputs, args.out, args.resize, args.overlay, args.overwrite,
        precision(args, "accelerator"), not args.no_progress,
    )  # fmt: skip
    print(outcome.summary())
    if outcome.written:
        print(f"masks: {outcome.out}")
    return 0 if outcome.written or not outcome.inputs else 1


def run(args: argparse.Namespace) -> int:
    if args.predict:
        return _predict(args)
    from ..data import segmentation_pairs
    from ..data.masks import is_mask_spec
    from ..evaluate.baselines import check_models
    from ..evaluate.data import ScoredData
    from ..evaluate.engine import compare
    from ..segment import SegmentationTask, SegmentConfig

    if not args.data:
        raise UsageError("--data is needed to train (camvid:DIR, voc:DIR or masks:DIR)")
    for option, spec in (("--data", args.data), ("--test-data", args.test_data)):
        if spec and not is_mask_spec(spec):
            raise UsageError(
                f"{option} {spec}: segmentation reads frames with masks: camvid:DIR, voc:DIR "
                "or masks:DIR (images/ and masks/ with matching stems)"
            )
    if args.inputs:
        raise UsageError(f"INPUT photographs ({args.inputs[0]}) are for --predict")
    layers = tuple(parse_layers(args.layers) or HYPERCOLUMN_LAYERS)  # all: conv1..conv5
    if args.head == "fcn32s" and layers != HYPERCOLUMN_LAYERS:
        raise UsageError("--layers is for --head hypercolumn; fcn32s reads fc7")
    if args.head == "hypercolumn" and args.freeze_through:
        raise UsageError("--freeze-through is for --head fcn32s; hypercolumn freezes the trunk")
    if args.workers < 0:
        raise UsageError(f"--workers must be 0 or more, got {args.workers}")
    try:
        config = SegmentConfig(
            head=args.head, layers=layers, freeze_through=args.freeze_through,
            resize=args.resize, resize_max=args.resize_max, crop=args.crop,
            epochs=args.epochs,
            batch_size=args.batch_size, lr=args.lr, weight_decay=args.weight_decay,
            class_weights=args.class_weights, bn_stats=args.bn_stats, workers=args.workers,
            accelerator=args.accelerator,
            precision=precision(args, "accelerator"), seed=args.seed,
            checkpoint_every=args.checkpoint_every, progress=not args.no_progress,
        )  # fmt: skip
    except ValueError as error:
        raise UsageError(str(error)) from None
    if check_models(args.weights) != "images":
        raise UsageError("segment reads photographs: give networks of RGB images")
    if args.hold_out and args.test_data:
        raise UsageError("--hold-out scores frames of --data; it takes no --test-data")
    names = hold_out_names(args.hold_out) if args.hold_out else None
    train, test = segmentation_pairs(args.data, args.test_data, args.test_split, names)
    train, test = train.subset(args.max_items), test.subset(args.max_items)
    print(f"train: {train.describe()}\ntest:  {test.describe()}")
    data = ScoredData.scan(train, test, args.max_bad_fraction, not args.no_progress)
    described = {
        "data": args.data, "test_data": args.test_data or f"{args.data} ({test.split})",
        "max_items": args.max_items,
    }  # fmt: skip
    if names:
        described["hold_out"] = names
    if args.max_items:
        described["subset"] = f"a trial: {args.max_items:,} frames of each split, evenly spread"
    task = SegmentationTask(data, config, described)
    comparison = compare(task, args.weights, args.out, args.seed, args.preset, args.overwrite)
    for table in comparison.tables:
        print(table.text())
    paths = comparison.paths
    print(
        f"report: {paths['json']}, {paths['md']}, {paths['png']}\n"
        f"pictures: {paths['iou']}, {paths['frames']}"
    )
    return 0
