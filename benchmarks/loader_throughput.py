"""Images per second of ImageDataset + DataLoader over a folder of JPEGs, for 0, 1, 2 workers.

Not a test. Generates ``--count`` JPEGs (shorter side ``--side`` px, 4:3) cut from the
scikit-image photographs into a temporary folder, then times full passes over it:

    python benchmarks/loader_throughput.py --count 1024 --side 256 --resize 256 --crop 224

Each row is timed with JPEGs decoded at reduced scale where the resize allows it (the
default) and with full decodes, and the crops of both are compared (the largest and the mean
difference in grey levels), e.g. camera-sized photographs at the paper's geometry:

    python benchmarks/loader_throughput.py --count 64 --side 3000 --resize 256 --crop 180 \
        --workers 0 2 --epochs 1
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import torch
from PIL import Image
from torch.utils.data import DataLoader

from splitbrain.data import ImageDataset, TrainTransform, open_source, scan_source


def write_jpegs(folder: Path, count: int, side: int) -> None:
    """``count`` side x (4/3 side) JPEGs (quality 90), crops of the built-in photos, resized."""
    crops = open_source(f"skimage:{count}")
    width = side * 4 // 3
    for i in range(count):
        image, label = crops.load(i)
        out = folder / crops.classes[label] / f"{i:05d}.jpg"
        out.parent.mkdir(exist_ok=True)
        resized = Image.fromarray(image).resize((width, side), Image.Resampling.BILINEAR)
        resized.save(out, quality=90)


def images_per_second(dataset: ImageDataset, workers: int, batch_size: int, epochs: int) -> float:
    """Throughput over ``epochs`` passes, after one untimed batch that starts the workers."""
    loader = DataLoader(
        dataset,
        batch_size=batch_size,
        shuffle=True,
        num_workers=workers,
        collate_fn=ImageDataset.collate,
        persistent_workers=workers > 0,
    )
    next(iter(loader))
    start, seen = time.perf_counter(), 0
    for _ in range(epochs):
        for images, _ in loader:
            seen += len(images)
    return seen / (time.perf_counter() - start)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--count", type=int, default=1024, help="JPEG files to generate")
    parser.add_argument("--side", type=int, default=256, help="their shorter side, px")
    parser.add_argument("--resize", type=int, default=256, help="TrainTransform resize")
    parser.add_argument("--crop", type=int, default=224, help="TrainTransform crop")
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--epochs", type=int, default=2)
    parser.add_argument("--workers", type=int, nargs="+", default=[0, 1, 2])
    args = parser.parse_args()
    torch.manual_seed(0)
    with tempfile.TemporaryDirectory() as tmp:
        write_jpegs(Path(tmp), args.count, args.side)
        source = open_source(f"folder:{tmp}")
        start = time.perf_counter()
        report = scan_source(source, progress=False)
        scan_rate = len(source) / (time.perf_counter() - start)
        transform = TrainTransform(args.resize, args.crop)
        reduced = ImageDataset(source, transform, log=report)
        full = ImageDataset(source, transform, log=report, reduced_decode=False)
        print(
            f"{len(source)} JPEGs {args.side * 4 // 3}x{args.side}, "
            f"TrainTransform(resize={args.resize}, crop={args.crop}), "
            f"batch {args.batch_size}, {torch.get_num_threads()} torch threads"
        )
        print(f"scan_source: {scan_rate:,.0f} images/s")
        print(f"{'workers':>8} {'reduced decode':>15} {'full decode':>12} {'ratio':>6}")
        for workers in args.workers:
            fast = images_per_second(reduced, workers, args.batch_size, args.epochs)
            slow = images_per_second(full, workers, args.batch_size, args.epochs)
            print(f"{workers:>8} {fast:>15,.1f} {slow:>12,.1f} {fast / slow:>6.2f}")
        centre = TrainTransform(args.resize, args.crop, mirror=False)
        differences = []
        for i in range(len(source)):
            torch.manual_seed(i)  # the same crop from both
            a = ImageDataset(source, centre)[i][0]
            torch.manual_seed(i)
            b = ImageDataset(source, centre, reduced_decode=False)[i][0]
            differences.append((a.int() - b.int()).abs())
        largest = max(int(d.max()) for d in differences)
        mean = sum(float(d.float().mean()) for d in differences) / len(differences)
        print(f"reduced vs full decode, same crops: max {largest} grey levels, mean {mean:.2f}")


if __name__ == "__main__":
    main()
