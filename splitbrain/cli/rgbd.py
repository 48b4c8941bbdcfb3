"""``splitbrain rgbd-split`` and ``splitbrain rgbd-eval``: held-out RGB-D frames.

``rgbd-split`` writes the training and the held-out frames of one or more RGB-D sources as two
``npz:`` files (pre-train on the first); ``rgbd-eval`` measures a trained RGB-D model's pretext
tasks on the held-out frames next to constant baselines from the training frames. Both take
the same ``--data`` and ``--holdout``, so they agree on which frames are which.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from .common import UsageError, examples, intrinsics

HOLDOUT_HELP = (
    "which frames to hold out: a fraction F (the last round(F*n) frames of each source), "
    "every:K (every K-th frame of each source) or 0-based indices into the concatenated "
    "sources, e.g. 3,10,20-25 (default 0.15)"
)


def _common(p: argparse.ArgumentParser, frames: bool = False) -> None:
    sources = p.add_mutually_exclusive_group(required=True)
    sources.add_argument(
        "--data",
        nargs="+",
        metavar="SPEC",
        help="RGB-D sources (npz:, nyu:, pairs:, tum:, sun:), concatenated in this order",
    )
    if frames:
        sources.add_argument(
            "--frames", nargs=2, metavar=("TRAIN", "TEST"),
            help="the two files rgbd-split wrote, instead of --data and --holdout",
        )  # fmt: skip
    p.add_argument("--holdout", default="0.15", help=HOLDOUT_HELP)
    p.add_argument(
        "--intrinsics", nargs="+", type=intrinsics, metavar="FX,FY,CX,CY",
        help="the camera in pixels (0-based centres), over what the files say: one for every "
        "source, or one per --data source (default: the files', else a Kinect-like camera)",
    )  # fmt: skip


def register(sub: argparse._SubParsersAction) -> list[argparse.ArgumentParser]:
    split = sub.add_parser(
        "rgbd-split",
        help="write the training and held-out frames of RGB-D data as two npz files",
        description="Write the frames of --data that --holdout keeps for training to TRAIN and "
        "the held-out ones to TEST, as npz: RGB-D files (z-depth, names, known intrinsics). "
        "Pre-train on npz:TRAIN; evaluate with rgbd-eval and the same --data and --holdout.",
    )
    split.epilog = examples(
        "splitbrain rgbd-split --data nyu:~/nyu.mat --out train.npz test.npz",
    )
    _common(split)
    split.add_argument(
        "--out", nargs=2, required=True, metavar=("TRAIN", "TEST"),
        help="the two npz files to write: the training frames and the held-out ones",
    )  # fmt: skip

    evaluate = sub.add_parser(
        "rgbd-eval",
        help="pretext-task quality of an RGB-D model on held-out frames, against baselines",
        description="Measure RGB->HHA (HHA and depth error), HHA->ab (top-1 over 313 bins) and "
        "HHA->L (RMSE) on the held-out centre crops, next to constant baselines from the "
        "training frames; write pretext.json, pretext.md and one PNG per held-out frame.",
    )
    evaluate.epilog = examples(
        "splitbrain rgbd-eval --weights W.safetensors --data nyu:~/nyu.mat --out runs/pretext",
    )
    evaluate.add_argument("--weights", required=True, help="weights of an rgbd-split model")
    _common(evaluate, frames=True)
    evaluate.add_argument("--out", required=True, help="output folder")
    evaluate.add_argument("--no-progress", action="store_true", help="no HHA progress bar")
    evaluate.add_argument(
        "--resize",
        type=int,
        help="shorter side before the centre crop (default: the pre-training resize the "
        "weights file records, else the preset's)",
    )
    evaluate.add_argument("--crop", type=int, help="crop side (default as --resize)")
    evaluate.add_argument("--batch-size", type=int, default=16, help="frames per batch")
    evaluate.add_argument("--no-pictures", action="store_true", help="skip the PNGs")
    return [split, evaluate]


def _cameras(args: argparse.Namespace) -> list | None:
    """The --intrinsics of each --data source (None: the files')."""
    from ..rgbd.hha import Intrinsics

    given = args.intrinsics
    if not given:
        return None
    if len(given) not in (1, len(args.data)):
        raise UsageError(
            f"--intrinsics: {len(given)} cameras for {len(args.data)} --data sources; give one "
            "for all of them or one per source"
        )
    return [Intrinsics(*k) for k in (given * len(args.data) if len(given) == 1 else given)]


def _run_split(args: argparse.Namespace) -> int:
    from ..rgbd import split_frames, write_npz  # h5py and friends: not needed for --help

    train, test = split_frames(args.data, args.holdout, _cameras(args))
    for frames, path, role in ((train, args.out[0], "train"), (test, args.out[1], "test")):
        write_npz(frames, path, role)
        print(f"{path}: {len(frames)} frames")
    return 0


def _eval_frames(args: argparse.Namespace) -> tuple:
    """(frames for the baselines, held-out frames) of --data/--holdout or --frames."""
    from ..rgbd import open_rgbd, split_frames
    from ..rgbd.hha import Intrinsics
    from ..rgbd.holdout import split_role

    if args.frames:
        camera = None
        if args.intrinsics:
            if len(args.intrinsics) != 1:
                raise UsageError("--intrinsics: with --frames, give one camera")
            camera = Intrinsics(*args.intrinsics[0])
        return tuple(open_rgbd(path, camera) for path in args.frames)
    for spec in args.data:
        if role := split_role(spec):
            kind = "held-out" if role == "test" else "training"
            raise UsageError(
                f"--data {spec}: the {kind} frames rgbd-split wrote; pass both of its files as "
                "--frames TRAIN TEST"
            )
    return split_frames(args.data, args.holdout, _cameras(args))


def _run_eval(args: argparse.Namespace) -> int:
    from ..data import EvalTransform
    from ..rgbd import RGBDDataset, evaluate_pretext
    from ..rgbd.pretext import write_report
    from ..weights import load

    if args.batch_size < 1:
        raise UsageError("--batch-size must be positive")
    model = load(args.weights)
    if model.split.space.kind != "rgbd":
        raise UsageError(
            f"--weights {args.weights}: a {model.split.name} model; rgbd-eval needs one "
            "pre-trained with --split rgbd"
        )
    resize, crop = model.geometry(args.crop, args.resize)
    train, test = _eval_frames(args)
    print(f"frames: {len(train)} for the baselines, {len(test)} held out")
    out = Path(args.out)
    pictures = None if args.no_pictures else out / "pictures"
    transform = EvalTransform(resize, crop)
    evaluation = evaluate_pretext(
        model,
        RGBDDataset(train, transform, progress=not args.no_progress),
        RGBDDataset(test, transform, progress=not args.no_progress),
        pictures,
        args.batch_size,
    )
    header = {
        "weights": str(args.weights),
        "variant": model.config.variant,
        "data": list(args.data or args.frames),
        "holdout": args.holdout if args.data else "the files of rgbd-split",
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
