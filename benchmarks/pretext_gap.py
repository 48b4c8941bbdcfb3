"""Over-fitting to the pretext task: a pre-trained model's own losses and pixel accuracies on
photographs it trained on against photographs it never saw (centre crops at its pre-training
geometry, eval mode, the training objective), one table row per weights file.

    python benchmarks/pretext_gap.py --train folder:../shared/data/imagenette/train \
        --held-out folder:../shared/data/imagenette/val --resize 200 runs/a/weights.safetensors

A held-out loss far above the training loss means the network memorised its few photographs;
equal losses mean more pre-training on the same photographs can still pay.
"""

from __future__ import annotations

import argparse

import torch
from torch.utils.data import DataLoader

import splitbrain as sb
from splitbrain.data import EvalTransform, ImageDataset, open_source
from splitbrain.device import autocast, default_precision
from splitbrain.models import input_geometry
from splitbrain.objective import Objective


@torch.no_grad()
def pretext_metrics(model, spec: str, resize: int | None, batch_size: int = 64) -> dict:
    """Mean of every logged loss and accuracy of the objective over ``spec``'s images."""
    resize, crop = input_geometry(model.config.preset, None, resize)
    dataset = ImageDataset(open_source(spec), EvalTransform(resize, crop))
    loader = DataLoader(dataset, batch_size=batch_size, collate_fn=ImageDataset.collate)
    objective, sums, count = Objective(), {}, 0
    precision, _ = default_precision(torch.device("cpu"))
    for images, _ in loader:
        raw, valid = model.split.space.decode_batch(images)
        with autocast(raw.device, precision):
            _, logs = objective(model, raw.contiguous(memory_format=torch.channels_last), valid)
        for key, value in logs.items():
            sums[key] = sums.get(key, 0.0) + float(value) * len(images)
        count += len(images)
    return {key: total / count for key, total in sums.items()}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("weights", nargs="+")
    p.add_argument("--train", required=True, help="the pre-training images")
    p.add_argument("--held-out", required=True, help="images of the same kind it never saw")
    p.add_argument("--resize", type=int, help="shorter side before the centre crop")
    args = p.parse_args()
    print("| weights | head | train loss | held-out loss | gap | train acc | held-out acc |")
    print("|---|---|---:|---:|---:|---:|---:|")
    for path in args.weights:
        model = sb.load(path)
        train = pretext_metrics(model, args.train, args.resize)
        held = pretext_metrics(model, args.held_out, args.resize)
        for key in sorted(k for k in train if k.endswith("/loss")):
            acc = key.replace("/loss", "/accuracy")
            gap = held[key] - train[key]
            accs = f"{100 * train[acc]:.1f} | {100 * held[acc]:.1f}" if acc in train else "- | -"
            print(f"| {path} | {key} | {train[key]:.3f} | {held[key]:.3f} | {gap:+.3f} | {accs} |")


if __name__ == "__main__":
    main()
