"""Pixels per second of hard and soft ab encoding, against scikit-learn's NearestNeighbors.

The reference is the original colorization code's approach (NearestNeighbors over the 313 bin
centres, then a Gaussian over the 5 nearest). Same inputs, same run; prints how far the
encodings agree and a table.

    python benchmarks/encode.py [--pixels 1000000] [--repeats 3]
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import torch
from sklearn.neighbors import NearestNeighbors

from splitbrain import color
from splitbrain.quantize import ab_quantizer


def best_time(fn, repeats: int) -> float:
    fn()  # warm-up (builds the candidate tables)
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return min(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pixels", type=int, default=1_000_000)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()

    rgb = torch.rand(1, 3, args.pixels, 1, generator=torch.Generator().manual_seed(0))
    ab = color.rgb_to_lab(rgb)[:, 1:].contiguous()  # (1,2,P,1), in-gamut ab values
    points = ab[0, :, :, 0].T.numpy().astype(np.float64)
    quantizer = ab_quantizer()
    centers = quantizer.centers.numpy().astype(np.float64)
    nn_index = NearestNeighbors(n_neighbors=5, algorithm="auto").fit(centers)

    def reference_hard():
        return nn_index.kneighbors(points, n_neighbors=1, return_distance=False)

    def reference_soft():  # sparse output (5 bins and weights per pixel), like ours
        dist, index = nn_index.kneighbors(points, n_neighbors=5)
        weight = np.exp(-(dist**2) / (2 * 5.0**2))
        return index, weight / weight.sum(1, keepdims=True)

    rows = [
        (
            "hard",
            best_time(reference_hard, args.repeats),
            best_time(lambda: quantizer.encode_hard(ab), args.repeats),
        ),
        (
            "soft k=5",
            best_time(reference_soft, args.repeats),
            best_time(lambda: quantizer.encode_soft(ab, 5, 5.0), args.repeats),
        ),
    ]
    agree = np.mean(quantizer.encode_hard(ab).flatten().numpy() == reference_hard()[:, 0])

    def by_bin(index, weight):  # each row ordered by bin, to compare the sets of bins
        order = index.argsort(1)
        return np.take_along_axis(index, order, 1), np.take_along_axis(weight, order, 1)

    bins, weight = by_bin(*(t[0, :, :, 0].T.numpy() for t in quantizer.encode_soft(ab)))
    ref_bins, ref_weight = by_bin(*reference_soft())
    same = (bins == ref_bins).all(1)
    gap = np.abs(weight - ref_weight)[same].max()
    print(
        f"{args.pixels:,} in-gamut ab pixels, torch {torch.__version__}, "
        f"{torch.get_num_threads()} threads; hard encodings agree on {agree:.4%}; "
        f"soft: same 5 bins on {same.mean():.4%}, weights within {gap:.1e}"
    )
    print(f"{'encoding':<10} {'sklearn px/s':>14} {'splitbrain px/s':>16} {'speed-up':>9}")
    for name, ref, ours in rows:
        print(
            f"{name:<10} {args.pixels / ref:>14,.0f} {args.pixels / ours:>16,.0f} "
            f"{ref / ours:>8.1f}x"
        )


if __name__ == "__main__":
    main()
