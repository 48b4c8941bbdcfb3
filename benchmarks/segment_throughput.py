"""Throughput of the segmentation training step, against a bare forward-backward of the same
network on the same batch.

(a) bare: the trunk and every column's head on resident float RGB in [0, 1] and int64 masks:
    forward, pixel cross-entropy, backward, SGD step;
(b) whole: ``SegmentTask.training_step`` on the uint8 RGB + mask frames a loader gives (the
    input decoding inside the step, every column's head and loss), then backward and the step.

Both heads (frozen hypercolumn with its per-layer columns, FCN-32s fine-tuning every layer) at
CamVid's training crops (160 px, batch 8), each timed in the same run, best of ``--steps``.

    python benchmarks/segment_throughput.py [--steps 5] [--width 0.5]
"""

from __future__ import annotations

import argparse
import time

import torch
import torch.nn.functional as F

import splitbrain as sb
from splitbrain.data.masks import IGNORE
from splitbrain.segment.train import SegmentConfig, SegmentTask


def cpu_name() -> str:
    """The CPU's model name (lscpu's), for the table's caption."""
    with open("/proc/cpuinfo", encoding="utf-8") as info:
        for line in info:
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    return "unknown CPU"


def best_seconds(fn, steps: int) -> float:
    fn()
    best = float("inf")
    for _ in range(steps):
        start = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - start)
    return best


def case(head: str, width: float, steps: int, batch: int, crop: int) -> tuple[float, float]:
    """(bare, whole) images per second for one head."""
    torch.manual_seed(0)
    config = SegmentConfig(head=head, batch_size=batch, crop=crop, workers=0, progress=False)
    task = SegmentTask(sb.build("splitbrain", preset="paper", width=width), config, 11, None, 100)
    task.train()
    optimiser = torch.optim.SGD([p for p in task.parameters() if p.requires_grad], lr=1e-3)
    frames = torch.randint(0, 256, (batch, 4, crop, crop), dtype=torch.uint8)
    frames[:, 3] = torch.randint(0, 11, (batch, crop, crop), dtype=torch.uint8)
    frames[:, 3, :4] = IGNORE
    rgb = (frames[:, :3].float() / 255).contiguous(memory_format=torch.channels_last)
    masks = frames[:, 3].long()

    def bare() -> None:  # every column's head, on resident float input
        features = task.model.features(rgb, task.layers, grad=bool(task.trained))
        loss = sum(
            F.cross_entropy(head([features[n] for n in config.head_layers(c)], rgb.shape[-2:]),
                            masks, ignore_index=IGNORE)
            for c, head in task.heads.items()
        )  # fmt: skip
        optimiser.zero_grad(set_to_none=True)
        loss.backward()
        optimiser.step()

    def whole() -> None:
        loss = task.training_step((frames, torch.zeros(batch, dtype=torch.long)), 0)
        optimiser.zero_grad(set_to_none=True)
        loss.backward()
        optimiser.step()

    task.log = lambda *args, **kwargs: None  # no trainer attached
    return batch / best_seconds(bare, steps), batch / best_seconds(whole, steps)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--steps", type=int, default=5)
    p.add_argument("--width", type=float, default=0.5)
    p.add_argument("--batch-size", type=int, default=8)
    p.add_argument("--crop", type=int, default=160)
    args = p.parse_args()
    print(
        f"CPU: {cpu_name()}, {torch.get_num_threads()} threads, "
        f"fp32, paper preset width {args.width}, batch {args.batch_size}, {args.crop} px"
    )
    print("| head | (a) bare img/s | (b) whole step img/s | (b)/(a) |")
    print("|---|---:|---:|---:|")
    for head in ("hypercolumn", "fcn32s"):
        bare, whole = case(head, args.width, args.steps, args.batch_size, args.crop)
        print(f"| {head} | {bare:.1f} | {whole:.1f} | {whole / bare:.1%} |")


if __name__ == "__main__":
    main()
