"""HHA encoding throughput (frames/s) at 240x320 on this machine; not a test.

    PYTHONPATH=. python benchmarks/hha.py [--repeats 7] [--device cpu]

Uses a real frame from ../shared/data/rgbd when present (else a synthetic floor-and-wall
scene) so that the valid mask and the gravity iterations see realistic data. Reports the best
of several timed runs, since other work on a shared machine only ever slows a run down.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np
import torch

from splitbrain.rgbd.hha import Intrinsics, hha

SHARED = Path(__file__).resolve().parents[2] / "shared" / "data" / "rgbd"
HEIGHT, WIDTH = 240, 320


def _frame() -> tuple[torch.Tensor, str]:
    path = SHARED / "indoor_scenes_240x320.npz"
    if path.is_file():
        return torch.from_numpy(np.load(path)["depth"][0]), f"{path.name}[0]"
    v = torch.arange(HEIGHT, dtype=torch.float32)[:, None].expand(HEIGHT, WIDTH)
    floor = 1.3 * 285.6 / (v - HEIGHT / 2 + 40).clamp_min(1e-3)
    return floor.clamp(max=4.0), "synthetic floor and wall"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--device", default="cpu")
    args = parser.parse_args()
    frame, what = _frame()
    camera = Intrinsics.default(HEIGHT, WIDTH)
    print(f"HHA {HEIGHT}x{WIDTH}, {what}, device {args.device}, {torch.get_num_threads()} threads")
    for batch in (1, 16):
        depth = frame.expand(batch, -1, -1).contiguous().to(args.device)
        hha(depth, camera)  # warm-up
        best = float("inf")
        for _ in range(args.repeats):
            start = time.perf_counter()
            hha(depth, camera)
            if depth.is_cuda:
                torch.cuda.synchronize()
            best = min(best, time.perf_counter() - start)
        print(
            f"batch {batch:2d}: {batch / best:7.1f} frames/s ({1000 * best / batch:.1f} ms/frame)"
        )


if __name__ == "__main__":
    main()
