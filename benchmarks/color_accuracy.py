"""Maximum error of splitbrain's Lab conversion against skimage over all 16.7M 8-bit colours,
and the RGB -> Lab -> RGB round trip, in float32 and float64. Prints a table.

    python benchmarks/color_accuracy.py
"""

from __future__ import annotations

import time

import numpy as np
import torch
from skimage.color import rgb2lab

from splitbrain import color


def main() -> None:
    levels = torch.arange(256, dtype=torch.float64) / 255
    cube = torch.stack(torch.meshgrid(levels, levels, levels, indexing="ij"), 0)
    cube = cube.reshape(1, 3, -1, 1)
    print(
        f"{'dtype':<8} {'max |dL|':>9} {'max |da|':>9} {'max |db|':>9} {'round trip':>11} "
        f"{'Mpx/s':>7}"
    )
    for dtype in (torch.float32, torch.float64):
        worst, trip, seconds = np.zeros(3), 0.0, 0.0
        for chunk in cube.split(2**21, dim=2):
            reference = rgb2lab(chunk.permute(0, 2, 3, 1).numpy())
            x = chunk.to(dtype)
            start = time.perf_counter()
            lab = color.rgb_to_lab(x)
            seconds += time.perf_counter() - start
            ours = lab.permute(0, 2, 3, 1).double().numpy()
            worst = np.maximum(worst, np.abs(ours - reference).max(axis=(0, 1, 2)))
            trip = max(trip, float((color.lab_to_rgb(lab) - x).abs().max()))
        dl, da, db = worst
        print(
            f"{str(dtype).split('.')[1]:<8} {dl:>9.2e} {da:>9.2e} {db:>9.2e} {trip:>11.2e} "
            f"{cube.shape[2] / seconds / 1e6:>7.1f}"
        )


if __name__ == "__main__":
    main()
