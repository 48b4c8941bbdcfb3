"""Weighted k-nearest-neighbour classification of pooled features (Wu et al. 2018, as in DINO).

A cheap health check of a representation: no training, one trunk pass. Each layer's activation
is averaged over space and scaled to unit length; a test image's k most cosine-similar training
images vote for their class with weight exp(similarity / T), T = 0.07. During pre-training,
``splitbrain.train.callbacks.KNNProbeCallback`` runs it periodically and logs ``knn/top1``.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch
from torch import Tensor

from ..data import EvalTransform
from ..device import autocast, device_for, resolve_precision
from ..extract import model_input
from ..models import SplitBrain
from .data import LabelledData, loader
from .features import check_layers, pool_activation
from .metrics import topk_correct

DEFAULT_KS = (20, 200)
TEMPERATURE = 0.07


@torch.no_grad()
def pooled_features(
    model: SplitBrain,
    batches,
    layers: list[str],
    device: torch.device,
    precision: str = "32-true",
) -> tuple[dict[str, Tensor], Tensor]:
    """Unit-length spatial averages of ``layers`` for every image of ``batches``, and labels.

    The model must already be in the mode wanted (eval for a frozen representation).
    """
    parts: dict[str, list[Tensor]] = {name: [] for name in layers}
    labels = []
    for images, y in batches:
        if images.shape[0] == 0:
            continue
        with autocast(device, precision):
            raw, valid = model_input(model, images.to(device))
            activations = model.features(raw, layers, valid)
        for name in layers:
            parts[name].append(pool_activation(activations[name].float()))
        labels.append(y.to(device))
    if not labels:
        raise ValueError("no readable images to compute kNN features from")
    return {n: torch.cat(p) for n, p in parts.items()}, torch.cat(labels)


@torch.no_grad()
def knn_scores(
    train: Tensor,
    train_labels: Tensor,
    test: Tensor,
    num_classes: int,
    ks: tuple[int, ...] = DEFAULT_KS,
    temperature: float = TEMPERATURE,
    chunk: int = 512,
) -> dict[int, Tensor]:
    """Class scores (M, C) per k: the summed exp(cos / T) of the k nearest training items.

    ``train`` (N, D) and ``test`` (M, D) must be unit-length rows. k larger than N uses all.
    """
    kmax = min(max(ks), len(train))
    scores: dict[int, list[Tensor]] = {k: [] for k in ks}
    for queries in test.split(chunk):
        similarity, index = (queries @ train.T).topk(kmax, dim=1)
        weights = (similarity / temperature).exp()
        votes = train_labels[index]
        for k in ks:
            n = min(k, kmax)
            zeros = weights.new_zeros(len(queries), num_classes)
            scores[k].append(zeros.scatter_add_(1, votes[:, :n], weights[:, :n]))
    return {k: torch.cat(s) for k, s in scores.items()}


@dataclass
class KNNResult:
    """Accuracies in percent: ``top1[k][layer]``; top5 only for more than 10 classes."""

    name: str
    top1: dict[int, dict[str, float]]
    top5: dict[int, dict[str, float]] = field(default_factory=dict)
    train_items: int = 0
    test_items: int = 0


def knn_accuracy(
    train: dict[str, Tensor],
    train_labels: Tensor,
    test: dict[str, Tensor],
    test_labels: Tensor,
    num_classes: int,
    ks: tuple[int, ...] = DEFAULT_KS,
    temperature: float = TEMPERATURE,
) -> tuple[dict[int, dict[str, float]], dict[int, dict[str, float]]]:
    """(top-1, top-5) in percent per k and layer, for pooled features of both splits."""
    top1: dict[int, dict[str, float]] = {k: {} for k in ks}
    top5: dict[int, dict[str, float]] = {k: {} for k in ks}
    for name in train:
        scores = knn_scores(train[name], train_labels, test[name], num_classes, ks, temperature)
        for k, s in scores.items():
            hits = topk_correct(s, test_labels, (1, 5))
            top1[k][name] = 100.0 * hits[1] / len(test_labels)
            top5[k][name] = 100.0 * hits[5] / len(test_labels)
    return top1, top5


@dataclass
class KNNConfig:
    """Settings of a kNN evaluation: the layers (None: every layer the model has), the
    neighbour counts, the vote temperature, the images' geometry (None: the model's)."""

    layers: tuple[str, ...] | None = ("conv5",)
    ks: tuple[int, ...] = DEFAULT_KS
    temperature: float = TEMPERATURE
    batch_size: int = 256
    crop: int | None = None
    resize: int | None = None
    workers: int = 2
    accelerator: str = "auto"
    precision: str | None = None  # None: bf16-mixed where the device has native bf16


def knn_evaluate(
    model: SplitBrain, data: LabelledData, config: KNNConfig | None = None, name: str = "model"
) -> KNNResult:
    """kNN accuracy of ``model``'s frozen, pooled layers: ``data``'s training images are the
    neighbours, its test images the queries (centre crops, no augmentation)."""
    config = config or KNNConfig()
    layers, ks, temperature = config.layers, config.ks, config.temperature
    layers = check_layers(model, None if layers is None else list(layers), name)
    device = device_for(config.accelerator, "accelerator")
    precision, _ = resolve_precision(config.precision, device)
    model.eval().to(device, memory_format=torch.channels_last)
    resize, crop = model.geometry(config.crop, config.resize)
    transform = EvalTransform(resize, crop)
    features = {}
    for split in ("train", "test"):
        batches = loader(data.dataset(split, transform), config.batch_size, config.workers)
        features[split] = pooled_features(model, batches, layers, device, precision)
    (train, train_labels), (test, test_labels) = features["train"], features["test"]
    top1, top5 = knn_accuracy(
        train, train_labels, test, test_labels, data.num_classes, ks, temperature
    )
    return KNNResult(
        name, top1, top5 if data.num_classes > 10 else {}, len(train_labels), len(test_labels)
    )
