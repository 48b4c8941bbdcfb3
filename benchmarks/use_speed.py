"""Speed of using a trained network: colorizing large photographs, extracting features.

Not a test. Prints two tables:

* ``colorize``: seconds per image and megapixels of output per second for synthetic
  photographs of 1 and 12 megapixels (a 4:3 crop of a scikit-image photograph, upscaled), for
  the ``paper`` preset at width 1 (the network sees 256 px) and a ``small`` model (72 px);
* ``extract``: images per second of ``extract_to_file`` over a folder of JPEGs (2 loader
  workers, everything included: decoding, pooling, writing) against the bare forward pass
  (``model.features``) of the same model on the same batches already in memory, after one
  warm-up batch; best of ``--rounds`` alternated rounds of each.

    python benchmarks/use_speed.py
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
from splitbrain.colorize import colorize_rgb
from splitbrain.data import EvalTransform, ImageDataset, open_source
from splitbrain.inference import extract_to_file


def photograph(megapixels: float) -> torch.Tensor:
    """A 4:3 RGB photograph of about ``megapixels``, (1, 3, H, W) in [0, 1]."""
    source = open_source("skimage:1")
    width = round((megapixels * 1e6 * 4 / 3) ** 0.5)
    height = round(width * 3 / 4)
    big = Image.fromarray(source[0]).resize((width, height), Image.Resampling.BICUBIC)
    return torch.from_numpy(np.array(big)).permute(2, 0, 1)[None].float() / 255


def time_colorize(model: sb.SplitBrain, image: torch.Tensor, side: int, repeats: int) -> float:
    colorize_rgb(model, image, side)  # warm-up
    start = time.perf_counter()
    for _ in range(repeats):
        colorize_rgb(model, image, side)
    return (time.perf_counter() - start) / repeats


def write_jpegs(folder: Path, count: int) -> None:
    source = open_source(f"skimage:{count}")
    for i in range(count):
        Image.fromarray(source[i]).resize((213, 160)).save(folder / f"{i:04d}.jpg", quality=90)


def bare_forward(model: sb.SplitBrain, folder: Path, batch: int, crop: int, resize: int) -> float:
    dataset = ImageDataset(open_source(f"folder:{folder}"), EvalTransform(resize, crop))
    images = torch.stack([dataset[i][0] for i in range(len(dataset))])
    batches = list(images.split(batch))
    model.features(batches[0].float() / 255, "conv5")  # warm-up
    start = time.perf_counter()
    with torch.no_grad():
        for chunk in batches:
            model.features(
                (chunk.float() / 255).contiguous(memory_format=torch.channels_last), "conv5"
            )
    return len(images) / (time.perf_counter() - start)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--images", type=int, default=2048, help="JPEGs for the extract rows")
    parser.add_argument("--rounds", type=int, default=3, help="extract: alternated rounds")
    args = parser.parse_args()
    torch.manual_seed(0)
    models = {
        "paper, width 1 (sees 256 px)": (sb.build("splitbrain", preset="paper"), 256),
        "small, width 0.5 (sees 72 px)": (sb.build("splitbrain", preset="small", width=0.5), 72),
    }
    print(f"{'colorize':<32} {'megapixels':>10} {'s/image':>8} {'MP/s':>6}")
    for name, (model, side) in models.items():
        for megapixels in (1, 12):
            image = photograph(megapixels)
            seconds = time_colorize(model, image, side, args.repeats)
            size = image.shape[-1] * image.shape[-2] / 1e6
            print(f"{name:<32} {size:>10.1f} {seconds:>8.2f} {size / seconds:>6.2f}")

    print(f"\n{'extract (folder of JPEGs)':<32} {'images/s':>9} {'bare forward':>13} {'ratio':>6}")
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp) / "jpegs"
        folder.mkdir()
        write_jpegs(folder, args.images)
        for name, preset, width, batch in (
            ("paper, width 1, 180 px crops", "paper", 1.0, 64),
            ("small, width 0.5, 64 px crops", "small", 0.5, 128),
        ):
            model = sb.build("splitbrain", preset=preset, width=width)
            crop, resize = (180, 256) if preset == "paper" else (64, 72)
            bare, rate = [], []
            for _ in range(args.rounds):  # alternated, best of each: the machine is shared
                bare.append(bare_forward(model, folder, batch, crop, resize))
                outcome = extract_to_file(
                    model, open_source(f"folder:{folder}"), ["conv5"], Path(tmp) / "f.safetensors",
                    batch_size=batch, workers=2, crop=crop, resize=resize, progress=False,
                )  # fmt: skip
                rate.append(outcome.rows / outcome.seconds)
            print(f"{name:<32} {max(rate):>9.1f} {max(bare):>13.1f} {max(rate) / max(bare):>6.2f}")


if __name__ == "__main__":
    main()
