"""The detection training step against a bare forward-backward of the same detector: what the
data, the stream and Lightning cost on top of torchvision's Faster R-CNN. Prints a markdown table.

    python benchmarks/detect_throughput.py --data coco:../shared/data/camvid --sides 360,600
"""

import argparse
import tempfile
import time
from pathlib import Path

import torch

import splitbrain as sb
from splitbrain.data.boxes import detection_pairs
from splitbrain.detect import DetectConfig, train_detector
from splitbrain.detect.train import DetectionImages, DetectTask, data_anchors, with_detector
from splitbrain.device import autocast
from splitbrain.evaluate.data import ScoredData


def bare_seconds(model: sb.SplitBrain, config: DetectConfig, dataset, steps: int) -> float:
    """Seconds per step of the detector's forward and backward on batches held in memory."""
    task = DetectTask(model, config, steps)
    optimiser = torch.optim.SGD([p for p in task.parameters() if p.requires_grad], lr=1e-4)
    batches = [
        DetectionImages.collate([dataset[(k * config.batch_size + j) % len(dataset)]
                                 for j in range(config.batch_size)])
        for k in range(steps)
    ]  # fmt: skip
    task.train()
    model.detector.transform.min_size = (config.side,)
    device = torch.device("cpu")
    start = 0.0
    for k, (images, targets) in enumerate(batches):
        if k == 1:  # the first step warms up
            start = time.perf_counter()
        with autocast(device, config.precision):
            losses = model.detector([image.float() / 255 for image in images], targets)
        optimiser.zero_grad()
        torch.stack(list(losses.values())).sum().backward()
        optimiser.step()
    return (time.perf_counter() - start) / (steps - 1)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", required=True, help="coco:DIR or voc:DIR")
    parser.add_argument("--sides", default="360,600", help="comma-separated shorter sides")
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--precision", default="bf16-mixed")
    args = parser.parse_args()
    train, test = detection_pairs(args.data, hold_out=["0016E5"])
    data = ScoredData.scan(train, test.subset(2), 0.01, progress=False)
    print("| side | bare forward-backward, s/step | training step, s/step | step / bare |")
    print("|---:|---:|---:|---:|")
    for side in (int(s) for s in args.sides.split(",")):
        config = DetectConfig(side=side, side_max=side, batch_size=2, workers=2, progress=False,
                              precision=args.precision, accelerator="cpu")  # fmt: skip
        anchors = data_anchors(train, data.train_log.good_indices(), side)
        trunk = sb.build("splitbrain", preset="paper", width=0.5)
        dataset = DetectionImages(train, data.train_log.good_indices(), mirror=False)
        bare = bare_seconds(with_detector(trunk, train.classes, anchors, side), config, dataset,
                            args.steps)  # fmt: skip
        config.epochs = args.steps * config.batch_size / len(dataset)
        with tempfile.TemporaryDirectory() as folder:
            result = train_detector(trunk, train, data.train_log, data.test, data.test_indices,
                                    anchors, config, Path(folder), "throughput")  # fmt: skip
        step = config.batch_size / result.images_per_second
        print(f"| {side} | {bare:.3f} | {step:.3f} | {step / bare:.2f} |")


if __name__ == "__main__":
    main()
