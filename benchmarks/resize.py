"""The package's resize (torch uint8, antialiased bilinear) against Pillow's bilinear resize.

Not a test. On real photographs (the Imagenette folder beside the checkout, else crops of the
scikit-image photographs), resizes each image's shorter side to several sizes with both and
prints the largest and mean absolute difference in grey levels and the milliseconds per image
of each, on one thread (as in a DataLoader worker):

    python benchmarks/resize.py --count 200
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from splitbrain.data import open_source
from splitbrain.data.transforms import as_chw, resize_frame, resized_shape

IMAGENETTE = Path(__file__).resolve().parents[2] / "shared" / "data" / "imagenette"


def pillow(image: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    return np.asarray(Image.fromarray(image).resize(size[::-1], Image.Resampling.BILINEAR))


def ours(image: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    return resize_frame(as_chw(image), size).permute(1, 2, 0).numpy()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--count", type=int, default=200, help="photographs to resize")
    parser.add_argument("--sides", type=int, nargs="+", default=[36, 72, 256])
    args = parser.parse_args()
    torch.set_num_threads(1)
    spec = f"folder:{IMAGENETTE}" if IMAGENETTE.is_dir() else "skimage:"
    source = open_source(spec)
    step = max(1, len(source) // args.count)
    images = [source[i] for i in range(0, len(source), step)][: args.count]
    print(f"{len(images)} images of {spec}, shorter side {min(min(i.shape[:2]) for i in images)}+")
    print(f"{'side':>5} {'max diff':>9} {'mean diff':>10} {'Pillow ms':>10} {'torch ms':>9}")
    for side in args.sides:
        sizes = [resized_shape(*image.shape[:2], side, 1) for image in images]
        diffs = [
            np.abs(pillow(i, s).astype(int) - ours(i, s))
            for i, s in zip(images, sizes, strict=True)
        ]
        times = {}
        for name, resize in (("pillow", pillow), ("torch", ours)):
            start = time.perf_counter()
            for image, size in zip(images, sizes, strict=True):
                resize(image, size)
            times[name] = (time.perf_counter() - start) / len(images) * 1e3
        largest, mean = max(d.max() for d in diffs), np.mean([d.mean() for d in diffs])
        print(
            f"{side:>5} {largest:>9} {mean:>10.4f} {times['pillow']:>10.3f} {times['torch']:>9.3f}"
        )


if __name__ == "__main__":
    main()
