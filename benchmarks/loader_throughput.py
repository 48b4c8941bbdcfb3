"""Images per second of ImageDataset + DataLoader over a folder of JPEGs, for 0, 1, 2 workers.

Not a test. Generates ``--count`` JPEGs (shorter side ``--side`` px, 4:3) cut from the
scikit-image photographs into a temporary folder, then times full passes over it:

    python benchmarks/loader_throughput.py --count 1024 --side 256 --resize 256 --crop 224

Each row is timed with JPEGs decoded at reduced scale where the resize allows it (the
default) and with full decodes, and the crops of both are compared (the largest and the mean
difference in grey levels), e.g. camera-sized photographs at the paper's geometry:

    python benchmarks/loader_throughput.py --count 64 --side 3000 --resize 256 --crop 180 \
        --workers 0 2 --epochs 1

``--shards`` adds a column: the same folder written once by ``splitbrain prepare`` (shorter
side 256, JPEG quality ``--quality``) and read back as ``shards:``; the table then also says
how far its crops are from the folder's. With ``--threads 1`` (the default) a run with 0
workers uses one core, so its row is the loader's images/s per core:

    python benchmarks/loader_throughput.py --count 1024 --side 375 --resize 256 --crop 180 \
        --workers 0 1 2 --shards
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
from splitbrain.data.shards import prepare


def write_jpegs(folder: Path, count: int, side: int) -> None:
    """``count`` side x (4/3 side) JPEGs (quality 90), crops of the built-in photos, resized."""
    crops = open_source(f"skimage:{count}")
    width = side * 4 // 3
    for i in range(count):
        image, label = crops.load(i)
        out = folder / crops.classes[label] / f"{i:05d}.jpg"
        out.parent.mkdir(parents=True, exist_ok=True)
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


def largest_and_mean_difference(
    first: ImageDataset, second: ImageDataset, transform: TrainTransform
) -> tuple[int, float]:
    """Grey levels between the centre crops of the two datasets' items (same sources order)."""
    differences = []
    for i in range(len(first.source)):
        torch.manual_seed(i)
        a = ImageDataset(first.source, transform, reduced_decode=first.decode_side is not None)[i]
        torch.manual_seed(i)
        b = ImageDataset(second.source, transform, reduced_decode=second.decode_side is not None)[i]
        differences.append((a[0].int() - b[0].int()).abs())
    largest = max(int(d.max()) for d in differences)
    return largest, sum(float(d.float().mean()) for d in differences) / len(differences)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--count", type=int, default=1024, help="JPEG files to generate")
    parser.add_argument("--side", type=int, default=256, help="their shorter side, px")
    parser.add_argument("--resize", type=int, default=256, help="TrainTransform resize")
    parser.add_argument("--crop", type=int, default=224, help="TrainTransform crop")
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--epochs", type=int, default=2)
    parser.add_argument("--workers", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--threads", type=int, default=1, help="torch threads of this process")
    parser.add_argument("--shards", action="store_true", help="also time prepared shards")
    parser.add_argument("--quality", type=int, default=95, help="JPEG quality of the shards")
    args = parser.parse_args()
    torch.manual_seed(0)
    torch.set_num_threads(args.threads)
    with tempfile.TemporaryDirectory() as tmp:
        write_jpegs(Path(tmp) / "photos", args.count, args.side)
        source = open_source(f"folder:{tmp}/photos")
        start = time.perf_counter()
        report = scan_source(source, progress=False)
        scan_rate = len(source) / (time.perf_counter() - start)
        transform = TrainTransform(args.resize, args.crop)
        reduced = ImageDataset(source, transform, log=report)
        full = ImageDataset(source, transform, log=report, reduced_decode=False)
        columns = {"reduced decode": reduced, "full decode": full}
        if args.shards:
            start = time.perf_counter()
            meta = prepare(source, f"{tmp}/shards", quality=args.quality, workers=1, progress=False)
            prepare_rate = len(source) / (time.perf_counter() - start)
            stored = meta["bytes"] / meta["images"] / 1024
            columns["shards"] = ImageDataset(open_source(f"shards:{tmp}/shards"), transform)
        print(
            f"{len(source)} JPEGs {args.side * 4 // 3}x{args.side}, "
            f"TrainTransform(resize={args.resize}, crop={args.crop}), "
            f"batch {args.batch_size}, {torch.get_num_threads()} torch threads"
        )
        print(f"scan_source: {scan_rate:,.0f} images/s")
        if args.shards:
            print(
                f"prepare (one process, quality {args.quality}): {prepare_rate:,.0f} images/s, "
                f"{stored:.1f} KiB per image in the shards"
            )
        print(f"{'workers':>8}" + "".join(f" {name:>15}" for name in columns) + "   (images/s)")
        for workers in args.workers:
            rates = [
                images_per_second(dataset, workers, args.batch_size, args.epochs)
                for dataset in columns.values()
            ]
            print(f"{workers:>8}" + "".join(f" {rate:>15,.1f}" for rate in rates))
        centre = TrainTransform(args.resize, args.crop, mirror=False)
        for name, dataset in columns.items():
            if dataset is full:
                continue
            largest, mean = largest_and_mean_difference(dataset, full, centre)
            print(f"{name} vs full decode, same crops: max {largest} grey levels, mean {mean:.2f}")


if __name__ == "__main__":
    main()
