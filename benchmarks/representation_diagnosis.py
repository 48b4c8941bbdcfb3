"""Why a pre-trained network does or does not beat random weights on a labelled dataset: two
measurements per model and layer, beside kNN top-1.

* Effective dimensionality: the participation ratio (sum of eigenvalues)^2 / (sum of squared
  eigenvalues) of the covariance of the probe's standardised features (each layer resized to
  its probe grid, as the linear probe sees it) over the training images. A representation
  that spends its variance on few directions gives a linear probe on 2,000 images less to
  separate classes with, whatever its kNN neighbourhoods look like.
* BatchNorm statistics at evaluation time: kNN top-1 with the running statistics the network
  was saved with, and with statistics re-estimated on the evaluation's own training images.

    python benchmarks/representation_diagnosis.py --data folder:../shared/data/imagenette \
        --resize 200 gaussian=gaussian:paper:0.5 splitbrain=runs/x/weights.safetensors
"""

from __future__ import annotations

import argparse
import copy

import torch

from splitbrain.data import EvalTransform
from splitbrain.device import default_precision
from splitbrain.evaluate import DEFAULT_LAYERS, KNNConfig, LabelledData, knn_evaluate, open_model
from splitbrain.evaluate.data import loader
from splitbrain.extract import extract_batches
from splitbrain.init import calibrate_batchnorm
from splitbrain.models import input_geometry


def participation_ratio(features: torch.Tensor) -> float:
    """(N, D) -> (sum lambda)^2 / sum lambda^2 of the standardised features' covariance."""
    x = features.double()
    x = (x - x.mean(0)) / x.std(0).clamp(min=1e-8)
    eigen = torch.linalg.svdvals(x) ** 2  # the covariance's eigenvalues, times N - 1
    return float(eigen.sum() ** 2 / (eigen**2).sum())


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("models", nargs="+", help="weights files or baselines, NAME=... allowed")
    p.add_argument("--data", required=True)
    p.add_argument("--resize", type=int)
    args = p.parse_args()
    data = LabelledData.open(args.data, progress=False)
    layers = list(DEFAULT_LAYERS)
    rows = []
    for spec in args.models:
        name, model = open_model(spec, data)
        resize, crop = input_geometry(model.config.preset, None, args.resize)
        train = data.dataset("train", EvalTransform(resize, crop))
        precision, _ = default_precision(torch.device("cpu"))
        parts: dict[str, list[torch.Tensor]] = {n: [] for n in layers}
        for features, _ in extract_batches(model, loader(train, 128), layers, "paper", precision):
            for n in layers:
                parts[n].append(features[n])
        ratio = {n: participation_ratio(torch.cat(parts[n])) for n in layers}
        config = KNNConfig(tuple(layers), (20,), resize=args.resize)
        knn = knn_evaluate(model, data, config, name=name)
        fresh, batches = copy.deepcopy(model), loader(train, 128)
        calibrate_batchnorm(fresh, batches, limit=len(batches))  # exact averages over train
        knn_fresh = knn_evaluate(fresh, data, config, name=name)
        rows.append((name, ratio, knn.top1[20], knn_fresh.top1[20]))
    print("| model | measure | " + " | ".join(layers) + " |")
    print("|---|---|" + "---:|" * len(layers))
    for name, ratio, knn, fresh in rows:
        for measure, values, fmt in (
            ("effective dimensions", ratio, ".0f"),
            ("kNN, saved BN statistics", knn, ".1f"),
            ("kNN, re-estimated BN", fresh, ".1f"),
        ):
            cells = " | ".join(f"{values[n]:{fmt}}" for n in layers)
            print(f"| {name} | {measure} | {cells} |")


if __name__ == "__main__":
    main()
