"""Fingerprints of what a source tree computes, to check that a refactor changed no result.

Not a test. Runs, with the splitbrain found first on ``--tree`` (default: this checkout), a few
short deterministic computations and prints one line per result: SHA-256 prefixes of the
weights after 6 steps of pre-training (on 36 px images, not resized, and on 48 px images
resized to 36), the RGB-D pretext metrics of three variants, and the tables of a small probe,
kNN, fine-tuning and CamVid segmentation run through the command line (on 8 CamVid frames of
each split when ``--camvid`` is there). Run it on two trees and compare the lines (``diff``):

    python benchmarks/same_results.py --tree /tmp/base > before.txt
    python benchmarks/same_results.py > after.txt && diff before.txt after.txt

It adapts to the module layout before and after the restructuring of issue 10.
"""

from __future__ import annotations

import argparse
import contextlib
import hashlib
import json
import sys
import tempfile
from pathlib import Path

import numpy as np


def digest(state: dict) -> str:
    sha = hashlib.sha256()
    for key in sorted(state):
        sha.update(key.encode())
        sha.update(state[key].detach().cpu().contiguous().numpy().tobytes())
    return sha.hexdigest()[:16]


def pretraining(folder: Path, side: int) -> str:
    try:
        from splitbrain.train import TrainConfig, pretrain
    except ImportError:  # the layout before issue 10
        from splitbrain.training import TrainConfig, pretrain
    import splitbrain as sb

    rng = np.random.default_rng(0)
    data = folder / f"images{side}.npz"
    images = rng.integers(0, 256, (40, side, side, 3), dtype=np.uint8)
    np.savez(data, images=images, labels=np.arange(40) % 4)
    config = TrainConfig(
        data=f"npz:{data}", out=str(folder / f"run{side}"), preset="small", width=0.125,
        steps=6, batch_size=8, workers=0, progress=False,
    )  # fmt: skip
    return digest(sb.load(pretrain(config)).state_dict())


def pretext(folder: Path) -> dict[str, str]:
    import torch

    import splitbrain as sb

    try:
        from splitbrain.data import EvalTransform
        from splitbrain.rgbd import Intrinsics, RGBDDataset, evaluate_pretext, open_rgbd

        def dataset(source):
            return RGBDDataset(source, EvalTransform(None, 32), progress=False)
    except ImportError:  # the layout before issue 10
        from splitbrain.data.rgbd import open_rgbd
        from splitbrain.data.rgbd_dataset import RGBDDataset
        from splitbrain.depth import Intrinsics
        from splitbrain.pretext import evaluate_pretext

        def dataset(source):
            return RGBDDataset(source, None, 32, train=False, progress=False)

    h, w = 40, 48
    camera = Intrinsics.default(h, w)
    v = np.arange(h, dtype=np.float32)[:, None] - camera.cy
    floor = np.where(v > 1, 1.2 * camera.fy / np.maximum(v, 1e-3), np.inf)
    depth = np.minimum(floor, 3.0).repeat(w, 1).astype(np.float32)
    depths = np.stack([depth * (1 + 0.05 * i) for i in range(10)])
    depths[:, 4:10, 6:14] = 0
    rgb = np.random.default_rng(0).integers(0, 256, (10, h, w, 3), dtype=np.uint8)
    cameras = np.array([[camera.fx, camera.fy, camera.cx, camera.cy]] * 10)
    np.savez(folder / "scene.npz", rgb=rgb, depth=depths, intrinsics=cameras)
    torch.manual_seed(0)
    out = {}
    for variant in ("splitbrain", "splitbrain-reg", "joint"):
        model = sb.build(variant, preset="small", split="rgbd", width=0.125)
        frames = dataset(open_rgbd(f"npz:{folder / 'scene.npz'}"))
        result = evaluate_pretext(model, frames, frames, None, 4)
        record = {"metrics": result.metrics, "baselines": result.baselines}
        out[variant] = json.dumps(record, sort_keys=True)
    return out


def transfer(folder: Path, camvid: Path) -> dict[str, str]:
    """The tables of each evaluation command on the 36 px pre-training's weights and a
    Krähenbühl baseline, through the command line (whatever the layout behind it)."""
    from splitbrain.cli import main as command

    weights = f"trained={folder / 'run36' / 'weights.safetensors'}"
    models = ["--weights", weights, "init:kraehenbuehl:small:0.125"]
    common = ["--data", f"npz:{folder / 'images36.npz'}", "--batch-size", "8", "--workers", "0"]
    common += ["--no-progress", "--seed", "0"]
    runs = {
        "probe": ["probe", *models, *common, "--epochs", "2", "--layers", "conv2,conv5"],
        "knn": ["knn", *models, *common, "--k", "3"],
        "finetune": ["finetune", *models, *common, "--epochs", "1"],
    }
    if camvid.is_dir():
        runs["segment"] = [
            "segment", *models, "--data", f"camvid:{camvid}", "--max-items", "8", "--epochs",
            "1", "--resize", "48", "--crop", "32", "--batch-size", "4", "--workers", "0",
            "--no-progress", "--layers", "conv1,conv5",
        ]  # fmt: skip
    out = {}
    for name, argv in runs.items():
        report = folder / f"report-{name}"
        assert command([*argv, "--out", str(report)]) == 0, name
        out[name] = json.dumps(json.loads((report / f"{name}.json").read_text())["tables"])
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    root = Path(__file__).resolve().parents[1]
    parser.add_argument("--tree", default=str(root))
    parser.add_argument("--camvid", default=str(root.parent / "shared" / "data" / "camvid"))
    args = parser.parse_args()
    sys.path.insert(0, args.tree)
    lines = []
    # what the library prints (older versions print to stdout) goes to stderr
    with tempfile.TemporaryDirectory() as tmp, contextlib.redirect_stdout(sys.stderr):
        folder = Path(tmp)
        for side in (36, 48):
            lines.append(f"pretrain 6 steps, {side} px images: weights {pretraining(folder, side)}")
        for variant, record in pretext(folder).items():
            lines.append(f"pretext {variant}: {record}")
        for name, tables in transfer(folder, Path(args.camvid)).items():
            lines.append(f"{name}: {tables}")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
