"""Training throughput of the split-brain variant, against a peak measured in the same run.

(a) the bare network: forward + backward + optimiser step on resident, pre-encoded tensors;
(b) the whole step from uint8 batches: float and Lab conversion, target encoding, losses;
(c) the data loader alone, reading a folder of 256 px JPEGs with 0, 1 and 2 workers.
FLOP/s are model FLOPs (forward and backward, counted by torch's FlopCounterMode) per second.
The peak is honest: the best kernel at any precision the device offers (a large matrix product
and a large 1x1 convolution, in fp32 and, where the device computes it natively, bf16), so a
step is a fraction of what the hardware can do, whatever precision it ran at. Every preset is
timed in fp32 and in bf16 autocast in the same run, so their ratio holds on a noisy machine;
the row of the default precision (``splitbrain.device.default_precision``) is marked.

    python benchmarks/train_throughput.py [--device cpu|cuda] [--steps 3]
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from PIL import Image

import splitbrain as sb
from splitbrain.data import ImageDataset, TrainTransform, open_source
from splitbrain.data.builtin import SkimageSource
from splitbrain.device import default_precision, native_bf16
from splitbrain.models import training_flops_per_image
from splitbrain.objective import downsample
from splitbrain.runs.stream import make_loader
from splitbrain.train.task import FUSED_ADAM

CASES = {"paper": (180, 64), "small": (32, 256)}


def synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize()


def timed(fn, device: torch.device, steps: int) -> float:
    """Best seconds per call over ``steps`` calls, after one warm-up call."""
    fn()
    best = float("inf")
    for _ in range(steps):
        synchronize(device)
        start = time.perf_counter()
        fn()
        synchronize(device)
        best = min(best, time.perf_counter() - start)
    return best


def peak_flops(device: torch.device, dtype: torch.dtype) -> float:
    """The better of a large matrix product and a large 1x1 convolution at ``dtype``."""
    n = 4096 if device.type == "cuda" else 2048
    a = torch.randn(n, n, device=device, dtype=dtype)
    matmul = 2 * n**3 / timed(lambda: a @ a, device, 5)
    x = torch.randn(64, 1024, 32, 32, device=device, dtype=dtype)
    x = x.contiguous(memory_format=torch.channels_last)
    conv = torch.nn.Conv2d(1024, 1024, 1, bias=False).to(device, dtype)
    conv = conv.to(memory_format=torch.channels_last)
    with torch.no_grad():
        conv_flops = 2 * 64 * 1024 * 1024 * 32 * 32 / timed(lambda: conv(x), device, 5)
    return max(matmul, conv_flops)


def bench_steps(
    preset: str, device: torch.device, steps: int, amp: bool, batch: int | None = None
) -> dict:
    side, default_batch = CASES[preset]
    batch = batch or default_batch
    model = sb.build("splitbrain", preset=preset).train().to(device)
    model = model.to(memory_format=torch.channels_last)
    optimiser = torch.optim.Adam(model.parameters(), 3e-5, fused=FUSED_ADAM)
    objective = sb.Objective()
    images = torch.randint(0, 256, (batch, 3, side, side), dtype=torch.uint8, device=device)
    autocast = torch.autocast(device.type, dtype=torch.bfloat16, enabled=amp)

    # (a) resident inputs and pre-encoded targets: only the network and the optimiser.
    lab = model.channels(images.float() / 255)
    grid = downsample(lab, model.output_size(side))[0]
    prepared = []
    for encoder in model.encoders:
        x = model.encoder_input(encoder, lab).contiguous(memory_format=torch.channels_last)
        target = encoder.spec.half.targets[0]
        quantizer = model.quantizer(target.quantizer)
        hard = quantizer.encode_hard(grid[:, list(target.channels)])
        prepared.append((encoder, x, target.name, hard))

    def bare_step():
        with autocast:
            loss = sum(
                torch.nn.functional.cross_entropy(e(x, (name,))[name].float(), t)
                for e, x, name, t in prepared
            )
        optimiser.zero_grad(set_to_none=True)
        loss.backward()
        optimiser.step()

    def whole_step():
        raw = images.float().div_(255).contiguous(memory_format=torch.channels_last)
        with autocast:
            loss, _ = objective(model, raw)
        optimiser.zero_grad(set_to_none=True)
        loss.backward()
        optimiser.step()

    flops = training_flops_per_image(model.config, side)
    return {
        "amp": amp,
        "preset": preset,
        "side": side,
        "batch": batch,
        "flops_per_image": flops,
        "bare_s": timed(bare_step, device, steps),
        "whole_s": timed(whole_step, device, steps),
    }


def write_jpeg_folder(folder: Path, count: int) -> None:
    """256 px JPEGs cut from the photographs bundled with scikit-image."""
    source = SkimageSource(count=count)
    for i in range(count):
        image, _ = source.load(i)
        picture = Image.fromarray(image).resize((341, 256), Image.Resampling.BILINEAR)
        picture.save(folder / f"{i:04d}.jpg", quality=90)


def bench_loader(folder: Path, workers: int, batch: int) -> float:
    source = open_source(f"folder:{folder}")
    dataset = ImageDataset(source, TrainTransform(256, 180))
    steps = max(2, 512 // batch)
    loader = make_loader(dataset, batch, steps + 1, workers=workers)
    iterator = iter(loader)
    next(iterator)  # start-up of the workers is not throughput
    start = time.perf_counter()
    count = sum(images.shape[0] for images, _ in iterator)
    return count / (time.perf_counter() - start)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--steps", type=int, default=3)
    parser.add_argument("--images", type=int, default=512, help="JPEGs for the loader test")
    parser.add_argument(
        "--batch-size", type=int, help="images per step for every preset (default: 64 at 180 "
        "px, 256 at 32 px; a GPU needs more to be filled)",
    )  # fmt: skip
    args = parser.parse_args()
    device = torch.device(args.device)
    default, why = default_precision(device)
    name = (
        torch.cuda.get_device_name() if device.type == "cuda"
        else f"CPU, {torch.get_num_threads()} threads"
    )  # fmt: skip
    precisions = {"fp32": torch.float32}
    if native_bf16(device):
        precisions["bf16"] = torch.bfloat16
    peaks = {label: peak_flops(device, dtype) for label, dtype in precisions.items()}
    peak = max(peaks.values())
    listed = ", ".join(f"{label} {p / 1e9:,.0f}" for label, p in peaks.items())
    print(f"device: {name}; kernel peaks GFLOP/s: {listed}; peak {peak / 1e9:,.0f}")
    print(f"default precision: {default} ({why})")
    print(
        f"{'preset':<7} {'precision':<10} {'batch':>5} {'GFLOP/img':>9} {'(a) img/s':>10} "
        f"{'(a) %peak':>9} {'(b) img/s':>10} {'(b)/(a)':>8}"
    )
    rows = []
    for preset in CASES:
        for label in precisions:
            r = bench_steps(preset, device, args.steps, label == "bf16", args.batch_size)
            rows.append(r)
            bare = r["batch"] / r["bare_s"]
            whole = r["batch"] / r["whole_s"]
            mark = "*" if (label == "bf16") == (default == "bf16-mixed") else " "
            print(
                f"{preset:<7} {label + mark:<10} {r['batch']:>5} "
                f"{r['flops_per_image'] / 1e9:>9.2f} {bare:>10.1f} "
                f"{bare * r['flops_per_image'] / peak:>8.1%} {whole:>10.1f} {whole / bare:>8.1%}"
            )
    print("* the default precision on this device")
    with tempfile.TemporaryDirectory() as tmp:
        write_jpeg_folder(Path(tmp), args.images)
        print(f"\n(c) loader, {args.images} JPEGs of 341x256, resize 256, crop 180, batch 64")
        print(f"{'workers':>7} {'img/s':>8}")
        for workers in (0, 1, 2):
            print(f"{workers:>7} {bench_loader(Path(tmp), workers, 64):>8.1f}")
    paper = next(
        r for r in rows if r["preset"] == "paper" and r["amp"] == (default == "bf16-mixed")
    )
    print(
        f"\n(b) on the paper preset needs {paper['batch'] / paper['whole_s']:.1f} img/s "
        "from the loader"
    )


if __name__ == "__main__":
    np.seterr(all="ignore")
    main()
