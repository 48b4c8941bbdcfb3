"""``splitbrain rgbd-split`` and ``splitbrain rgbd-eval``: held-out RGB-D frames.

``rgbd-split`` writes the training and the held-out frames of one or more RGB-D sources as two
``npz:`` files (pre-train on the first); ``rgbd-eval`` measures a trained RGB-D model's pretext
tasks on the held-out frames next to constant baselines from the training frames. Both take
the same ``--data`` and ``--holdout``, so they agree on which frames are which.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from .common import UsageError, geometry

HOLDOUT_HELP = (
    "which frames to hold out: a fraction F (the last round(F*n) frames of each source), "
    "every:K (every K-th frame of each source) or 0-based indices into the concatenated "
    "sources, e.g. 3,10,20-25 (default 0.15)"
)


def _common(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--data",
        nargs="+",
        required=True,
        metavar="SPEC",
        help="RGB-D sources (npz:, nyu:, pairs:, tum:, sun:), concatenated in this order",
    )
    p.add_argument("--holdout", default="0.15", help=HOLDOUT_HELP)


def register(sub: argparse._SubParsersAction) -> list[argparse.ArgumentParser]:
    split = sub.add_parser(
        "rgbd-split",
        help="write the training and held-out frames of RGB-D data as two npz files",
        description="Write the frames of --data that --holdout keeps for training to TRAIN and "
        "the held-out ones to TEST, as npz: RGB-D files (z-depth, names, known intrinsics). "
        "Pre-train on npz:TRAIN; evaluate with rgbd-eval and the same --data and --holdout.",
    )
    _common(split)
    split.add_argument("--out", nargs=2, required=True, metavar=("TRAIN", "TEST"))

    evaluate = sub.add_parser(
        "rgbd-eval",
        help="pretext-task quality of an RGB-D model on held-out frames, against baselines",
        description="Measure RGB->HHA (HHA and depth error), HHA->ab (top-1 over 313 bins) and "
        "HHA->L (RMSE) on the held-out centre crops, next to constant baselines from the "
        "training frames; write pretext.json, pretext.md and one PNG per held-out frame.",
    )
    evaluate.add_argument("--weights", required=True, help="weights of an rgbd-split model")
    _common(evaluate)
    evaluate.add_argument("--out", required=True, help="output folder")
    evaluate.add_argument(
        "--resize",
        type=int,
        help="shorter side before the centre crop (default: the run's config.yaml beside the "
        "weights, else the preset's)",
    )
    evaluate.add_argument("--crop", type=int, help="crop side (default as --resize)")
    evaluate.add_argument("--batch-size", type=int, default=16)
    evaluate.add_argument("--no-pictures", action="store_true", help="skip the PNGs")
    return [split, evaluate]


def _run_split(args: argparse.Namespace) -> int:
    from ..rgbd import split_frames, write_npz  # h5py and friends: not needed for --help

    train, test = split_frames(args.data, args.holdout)
    for frames, path in ((train, args.out[0]), (test, args.out[1])):
        write_npz(frames, path)
        print(f"{path}: {len(frames)} frames")
    return 0


def _run_eval(args: argparse.Namespace) -> int:
    from ..data import EvalTransform
    from ..rgbd import RGBDDataset, evaluate_pretext, split_frames
    from ..rgbd.pretext import write_report
    from ..weights import load

    if args.batch_size < 1:
        raise UsageError("--batch-size must be positive")
    model = load(args.weights)
    resize, crop = geometry(args.weights, model.config.preset, args.crop, args.resize)
    train, test = split_frames(args.data, args.holdout)
    print(f"frames: {len(train)} for the baselines, {len(test)} held out")
    out = Path(args.out)
    pictures = None if args.no_pictures else out / "pictures"
    transform = EvalTransform(resize, crop)
    evaluation = evaluate_pretext(
        model,
        RGBDDataset(train, transform),
        RGBDDataset(test, transform),
        pictures,
        args.batch_size,
    )
    header = {
        "weights": str(args.weights),
        "variant": model.config.variant,
        "data": list(args.data),
        "holdout": args.holdout,
        "resize": resize,
    }
    json_path, md_path = write_report(evaluation, out, header)
    for name, m in evaluation.metrics.items():
        print(f"{name:30s} model {m['model']:9.4f}  baseline {m['baseline']:9.4f}  ({m['better']})")
    print(f"report: {md_path}, {json_path}")
    if pictures is not None:
        print(f"pictures: {pictures} ({len(evaluation.pictures)} PNGs)")
    return 0


_COMMANDS = {"rgbd-split": _run_split, "rgbd-eval": _run_eval}


def run(args: argparse.Namespace) -> int:
    """Both subcommands share this module; ``args.command`` says which one ran."""
    return _COMMANDS[args.command](args)
