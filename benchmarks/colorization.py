"""Colorization quality on held-out photographs (SPEC section 7, the ECCV16 metrics).

Not a test. Pre-trains the ``splitbrain`` variant on the 2,000 ``train`` photographs of
``../shared/data/imagenette`` (resumable: a finished run is not trained again), then colorizes
the 600 ``val`` photographs, which training never saw, at their full 160 px, and scores the ab
channels against the originals:

    python benchmarks/colorization.py              # pre-train (about 20 min on 2 cores), score
    python benchmarks/colorization.py --pretrain-only

Metrics per decoding (annealed mean T = 0.38, mean, mode) and for two baselines (grey, ab = 0;
the training prior's mean colour): AuC of the per-pixel ab error over thresholds 0..150, the
class-rebalanced AuC (each pixel weighted by the inverse frequency of its true colour's bin over
the evaluated set), accuracy within 10 and 20, and PSNR of the RGB result. Writes a table
(markdown, JSON) and a PNG of 16 held-out photographs (grey | ours | original).
"""

from __future__ import annotations

import argparse
import dataclasses
import hashlib
import json
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from splitbrain.color import lab_to_rgb, rgb_to_lab
from splitbrain.colorize import colorize_rgb
from splitbrain.quantize import ab_quantizer

REPO = Path(__file__).resolve().parents[1]
IMAGENETTE = REPO.parent / "shared" / "data" / "imagenette"


@dataclass(frozen=True)
class Recipe:
    """The pre-training of the scored model; its hash names the run folder."""

    data: str = f"folder:{IMAGENETTE}"
    variant: str = "splitbrain"
    preset: str = "small"
    width: float = 0.5
    crop: int = 64
    resize: int = 72
    epochs: float = 40.0
    batch_size: int = 64
    seed: int = 0

    def key(self) -> str:
        text = json.dumps(dataclasses.asdict(self), sort_keys=True)
        return hashlib.sha256(text.encode()).hexdigest()[:8]


def pretrain_model(recipe: Recipe, runs: Path, workers: int, progress: bool) -> Path:
    from splitbrain.train import TrainConfig, pretrain

    config = TrainConfig(
        data=recipe.data,
        out=str(runs / recipe.key() / recipe.variant),
        variant=recipe.variant,
        preset=recipe.preset,
        width=recipe.width,
        crop=recipe.crop,
        resize=recipe.resize,
        epochs=recipe.epochs,
        batch_size=recipe.batch_size,
        seed=recipe.seed,
        workers=workers,
        progress=progress,
    )
    return pretrain(config)


THRESHOLDS = 151  # ab errors 0, 1, ..., 150
PICTURES = 16


def load_split(split: str):
    """(uint8 (N, H, W, 3) photographs, their names) of one split of Imagenette."""
    from splitbrain.data import open_source

    source = open_source(f"folder:{IMAGENETTE}", split=split)
    return np.stack([source[i] for i in range(len(source))]), [
        source.name(i) for i in range(len(source))
    ]


def prior_mean_ab(images: np.ndarray) -> torch.Tensor:
    """The mean ab of the training photographs' pixels: the prior's mean colour."""
    total = torch.zeros(2, dtype=torch.float64)
    for chunk in np.array_split(images, max(1, len(images) // 100)):
        rgb = torch.from_numpy(chunk).permute(0, 3, 1, 2).float() / 255
        total += rgb_to_lab(rgb)[:, 1:].double().mean((0, 2, 3)) * len(chunk)
    return (total / len(images)).float()


def scores(predicted: torch.Tensor, original: torch.Tensor, weights: torch.Tensor) -> dict:
    """ECCV16 metrics of predicted RGB (N,3,H,W) against the originals, both in [0, 1]."""
    lab_true, lab_pred = rgb_to_lab(original), rgb_to_lab(predicted)
    error = (lab_pred[:, 1:] - lab_true[:, 1:]).norm(dim=1)  # (N, H, W) ab distance
    steps = error.ceil().clamp(max=THRESHOLDS).long().flatten()  # err <= t  <=>  ceil(err) <= t
    plain = torch.bincount(steps, minlength=THRESHOLDS + 1)[:THRESHOLDS].cumsum(0).double()
    plain /= steps.numel()
    weighted = torch.bincount(steps, weights.flatten().double(), THRESHOLDS + 1)[:THRESHOLDS]
    weighted = weighted.cumsum(0) / weights.double().sum()
    mse = (predicted - original).square().mean((1, 2, 3)).clamp(min=1e-10)
    return {
        "AuC": 100 * float(plain.mean()),
        "rebalanced AuC": 100 * float(weighted.mean()),
        "acc@10": 100 * float(plain[10]),
        "acc@20": 100 * float(plain[20]),
        "PSNR (dB)": float((10 * torch.log10(1 / mse)).mean()),
    }


def rebalancing(original: torch.Tensor) -> torch.Tensor:
    """Per pixel, the inverse frequency of its true colour's bin over the evaluated set."""
    ab = rgb_to_lab(original)[:, 1:]
    bins = ab_quantizer().encode_hard(ab)
    counts = torch.bincount(bins.flatten(), minlength=313).double()
    return (1.0 / counts)[bins].float()


def evaluate(weights: Path, recipe: Recipe, out: Path, train_images: np.ndarray) -> dict:
    import splitbrain as sb

    model = sb.load(weights)
    val, names = load_split("val")
    original = torch.from_numpy(val).permute(0, 3, 1, 2).float() / 255
    weights_px = rebalancing(original)
    rows: dict[str, dict] = {}
    lab = rgb_to_lab(original)
    grey = lab.clone()
    grey[:, 1:] = 0
    rows["grey (ab = 0)"] = scores(lab_to_rgb(grey), original, weights_px)
    prior = lab.clone()
    prior[:, 1:] = prior_mean_ab(train_images).view(1, 2, 1, 1)
    rows["training prior's mean colour"] = scores(lab_to_rgb(prior), original, weights_px)
    outputs = {}
    for decode in ("annealed", "mean", "mode"):
        start = time.perf_counter()
        parts = [
            colorize_rgb(model, chunk, recipe.resize, decode=decode) for chunk in original.split(50)
        ]
        outputs[decode] = torch.cat(parts)
        seconds = time.perf_counter() - start
        label = "ours, annealed mean T = 0.38" if decode == "annealed" else f"ours, {decode}"
        rows[label] = {**scores(outputs[decode], original, weights_px), "seconds": seconds}
    picture(original, outputs["annealed"], out / "colorization_imagenette_val.png")
    return {"rows": rows, "images": len(val), "first_names": names[:PICTURES]}


def picture(original: torch.Tensor, ours: torch.Tensor, path: Path) -> None:
    """16 held-out photographs, 4 per row, each as grey | ours | original."""
    step = len(original) // PICTURES
    pick = list(range(0, step * PICTURES, step))
    lab = rgb_to_lab(original[pick])
    lab[:, 1:] = 0
    triplets = torch.cat([lab_to_rgb(lab), ours[pick], original[pick]], 3)  # (16, 3, H, 3W)
    rows = [torch.cat(list(triplets[r * 4 : r * 4 + 4]), 2) for r in range(PICTURES // 4)]
    grid = torch.cat(rows, 1).permute(1, 2, 0).clamp(0, 1).numpy()
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray((grid * 255).round().astype(np.uint8)).save(path)


def markdown(result: dict) -> str:
    columns = ["AuC", "rebalanced AuC", "acc@10", "acc@20", "PSNR (dB)"]
    lines = ["| | " + " | ".join(columns) + " |", "|---|" + "---:|" * len(columns)]
    for name, row in result["rows"].items():
        cells = [f"{row[c]:.1f}" if c != "PSNR (dB)" else f"{row[c]:.2f}" for c in columns]
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", default=str(REPO / "runs" / "colorization"))
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--pretrain-only", action="store_true")
    parser.add_argument("--out", default=str(REPO / "benchmarks" / "results"))
    parser.add_argument("--no-progress", action="store_true")
    args = parser.parse_args()
    recipe = Recipe()
    weights = pretrain_model(recipe, Path(args.runs), args.workers, not args.no_progress)
    print(f"weights: {weights}")
    if args.pretrain_only:
        return
    out = Path(args.out)
    train, _ = load_split("train")
    result = {"recipe": dataclasses.asdict(recipe), "weights": str(weights)}
    result.update(evaluate(weights, recipe, out, train))
    (out / "colorization_imagenette_val.json").write_text(json.dumps(result, indent=2) + "\n")
    table = markdown(result)
    (out / "colorization_imagenette_val.md").write_text(table + "\n")
    print(table)
    print(f"picture: {out / 'colorization_imagenette_val.png'}")


if __name__ == "__main__":
    main()
