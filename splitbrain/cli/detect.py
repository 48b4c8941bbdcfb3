"""``splitbrain detect``: train and score detectors on pre-trained networks and baselines (one
table), or, with ``--predict``, find objects in photographs with a saved detector."""

from __future__ import annotations

import argparse

from ..models import CONV_LAYERS
from .common import (
    UsageError,
    add_precision_argument,
    examples,
    hold_out_names,
    positive,
    precision,
    predicting_model,
)
from .evaluation import add_preset_argument


def register(sub: argparse._SubParsersAction) -> list[argparse.ArgumentParser]:
    p = sub.add_parser(
        "detect",
        help="object detection on pre-trained networks (COCO-format boxes, VOC)",
        description="Train a detector on each --weights model (weights files or the baselines "
        "gaussian:PRESET[:WIDTH] and init:kraehenbuehl:PRESET[:WIDTH]) with --data's train "
        "images and score it on its val images: COCO's AP over IoU 0.5:0.95, AP50, AP75 and "
        "each category's AP, and VOC 2007's 11-point AP50 (pycocotools; crowd and difficult "
        "regions ignored). The detector is torchvision's Faster R-CNN with the trunk's pool5 as "
        "its backbone and its fc6/fc7 as the box head. Frozen by default (the trunk through "
        "conv5 fixed; proposals and the box head train); --fine-tune trains the trunk too, "
        "above --freeze-through. Writes detect.{json,md,png}, detect_ap.png, "
        "detect_frames.png and each model's detector in --out; run it again to resume. With "
        "--predict: find objects in the INPUT photographs at their full size with a saved "
        "detector (detections.json in COCO's results format, and pictures).",
    )
    p.epilog = examples(
        "splitbrain detect --weights W.safetensors init:kraehenbuehl:paper:0.5 --data "
        "coco:../shared/data/camvid --hold-out 0016E5",
        "splitbrain detect --predict --weights runs/detect/models/W/W.safetensors street/ "
        "--out boxes/",
    )
    p.add_argument(
        "inputs", nargs="*", metavar="INPUT",
        help="--predict: image files, folders or globs (default: none)",
    )  # fmt: skip
    p.add_argument(
        "--weights", nargs="+", required=True, metavar="W",
        help="weights files or baselines, NAME=W names a row; --predict: one detector",
    )  # fmt: skip
    p.add_argument("--predict", action="store_true", help="find objects in INPUT photographs")
    p.add_argument(
        "--data", metavar="SPEC",
        help="coco:DIR (boxes/SPLIT.json, annotations/SPLIT.json or "
        "annotations/instances_SPLIT*.json, file names relative to DIR) or voc:DIR (a VOCdevkit "
        "year folder); its train split trains (needed to train; default: none)",
    )  # fmt: skip
    p.add_argument(
        "--test-data", metavar="SPEC", help="images to score (default: --data's --test-split)"
    )
    p.add_argument("--test-split", default="val", choices=["val", "test"], help="the split scored")
    p.add_argument(
        "--hold-out", metavar="NAMES",
        help="score on the images of these sources, from every split of --data, and train on "
        "all the others: comma-separated names, each an image's stem or the start of it before "
        "a separator (CamVid: the drive, 0016E5), or @FILE listing them; a split by street or "
        "drive says how the detector carries to scenes it never saw (default: none)",
    )  # fmt: skip
    p.add_argument(
        "--fine-tune", action="store_true",
        help="train the trunk too, above --freeze-through (default: frozen through conv5)",
    )  # fmt: skip
    p.add_argument(
        "--freeze-through", choices=CONV_LAYERS,
        help="--fine-tune: freeze this layer and all below it (default: train everything)",
    )  # fmt: skip
    p.add_argument(
        "--side", type=positive(int),
        help="shorter side of the images the detector sees (default 600, Fast R-CNN's: CamVid's "
        "480x360 enlarged); smaller is faster, larger finds smaller objects; --predict: the "
        "detector's",
    )  # fmt: skip
    p.add_argument(
        "--side-max", type=positive(int),
        help="random scale: each training step's shorter side drawn from --side to this "
        "(default 1.25 x --side)",
    )  # fmt: skip
    p.add_argument(
        "--epochs", type=positive(float), default=12, help="passes over the training images"
    )
    p.add_argument("--batch-size", type=positive(int), default=2, help="images per step")
    p.add_argument(
        "--lr", type=positive(float), default=0.01,
        help="SGD learning rate, x0.1 after 3/4 of the run (Fast R-CNN's one step)",
    )  # fmt: skip
    p.add_argument("--weight-decay", type=float, default=5e-4, help="SGD weight decay")
    add_preset_argument(p)
    add_precision_argument(p)
    p.add_argument(
        "--out", default="runs/detect",
        help="run folder (report, detectors, checkpoints); the same command again resumes "
        "it, or, finished, prints its table; a finished one made with other settings is kept "
        "and a new folder made beside it unless --overwrite; --predict: the output folder",
    )  # fmt: skip
    p.add_argument("--overwrite", action="store_true", help="start --out again from nothing")
    p.add_argument("--workers", type=int, default=2, help="data loader processes")
    p.add_argument(
        "--accelerator", default="auto", choices=["auto", "cpu", "gpu"], help="where to run"
    )
    p.add_argument(
        "--max-items", type=positive(int), metavar="N",
        help="a quick trial: N images of each split, evenly spread (default: all)",
    )  # fmt: skip
    p.add_argument(
        "--max-bad-fraction", type=float, default=0.01,
        help="stop if more of the images than this are unusable",
    )  # fmt: skip
    p.add_argument("--checkpoint-every", type=positive(int), default=100, help="steps")
    p.add_argument("--seed", type=int, default=0, help="seed of the detector and baselines")
    p.add_argument("--no-progress", action="store_true", help="no progress bars")
    return [p]


def _predict(args: argparse.Namespace) -> int:
    from ..detect import detect_files

    model = predicting_model(args, "detector", "detect")
    if args.side:
        model.detector.transform.min_size = (args.side,)
    outcome = detect_files(
        model, args.inputs, args.out, args.overwrite, precision(args, "accelerator"),
        not args.no_progress,
    )  # fmt: skip
    print(outcome.summary())
    if outcome.written:
        print(f"boxes: {outcome.out / 'detections.json'} (COCO results; images.json names them)")
    return 0 if outcome.written or not outcome.inputs else 1


def run(args: argparse.Namespace) -> int:
    if args.predict:
        return _predict(args)
    from ..data.boxes import detection_pairs, is_box_spec
    from ..detect import DetectConfig, DetectionTask
    from ..detect.train import FROZEN_THROUGH
    from ..evaluate.baselines import check_models
    from ..evaluate.data import ScoredData
    from ..evaluate.engine import compare

    if not args.data:
        raise UsageError("--data is needed to train (coco:DIR or voc:DIR)")
    for option, spec in (("--data", args.data), ("--test-data", args.test_data)):
        if spec and not is_box_spec(spec):
            raise UsageError(
                f"{option} {spec}: detection reads images with boxes: coco:DIR or voc:DIR"
            )
    if args.inputs:
        raise UsageError(f"INPUT photographs ({args.inputs[0]}) are for --predict")
    if args.freeze_through and not args.fine_tune:
        raise UsageError("--freeze-through is for --fine-tune; frozen freezes through conv5")
    if args.hold_out and args.test_data:
        raise UsageError("--hold-out scores images of --data; it takes no --test-data")
    if args.workers < 0:
        raise UsageError(f"--workers must be 0 or more, got {args.workers}")
    try:
        config = DetectConfig(
            freeze_through=args.freeze_through if args.fine_tune else FROZEN_THROUGH,
            side=args.side, side_max=args.side_max, epochs=args.epochs,
            batch_size=args.batch_size, lr=args.lr, weight_decay=args.weight_decay,
            workers=args.workers, accelerator=args.accelerator,
            precision=precision(args, "accelerator"), seed=args.seed,
            checkpoint_every=args.checkpoint_every, progress=not args.no_progress,
        )  # fmt: skip
    except ValueError as error:
        raise UsageError(str(error)) from None
    if check_models(args.weights) != "images":
        raise UsageError("detect reads photographs: give networks of RGB images")
    names = hold_out_names(args.hold_out) if args.hold_out else None
    train, test = detection_pairs(args.data, args.test_data, args.test_split, names)
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
        described["subset"] = f"a trial: {args.max_items:,} images of each split, evenly spread"
    task = DetectionTask(data, config, described)
    comparison = compare(task, args.weights, args.out, args.seed, args.preset, args.overwrite)
    for table in comparison.tables:
        print(table.text())
    paths = comparison.paths
    print(
        f"report: {paths['json']}, {paths['md']}, {paths['png']}\n"
        f"pictures: {paths['ap']}, {paths['frames']}"
    )
    return 0
