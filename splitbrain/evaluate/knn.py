"""Weighted k-nearest-neighbour classification of pooled features (Wu et al. 2018, as in DINO).

A cheap health check of a representation: no training, one trunk pass. Each layer's activation
is averaged over space and scaled to unit length; a test image's k most cosine-similar training
images vote for their class with weight exp(similarity / T), T = 0.07. ``KNNProbeCallback`` runs
it periodically during pre-training and logs ``knn/top1``.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import lightning as L
import numpy as np
import torch
from lightning.pytorch.utilities import rank_zero_info
from torch import Tensor
from torch.utils.data import Subset

from ..data import EvalTransform, ImageDataset, ImageSource, open_source
from ..models import SplitBrain
from .data import LabelledData, loader, require_labels
from .features import check_layers, device_for, eval_geometry, pool_activation, to_raw
from .metrics import topk_correct

DEFAULT_KS = (20, 200)
TEMPERATURE = 0.07


@torch.no_grad()
def pooled_features(
    model: SplitBrain, batches, layers: list[str], device: torch.device
) -> tuple[dict[str, Tensor], Tensor]:
    """Unit-length spatial averages of ``layers`` for every image of ``batches``, and labels.

    The model must already be in the mode wanted (eval for a frozen representation).
    """
    parts: dict[str, list[Tensor]] = {name: [] for name in layers}
    labels = []
    for images, y in batches:
        if images.shape[0] == 0:
            continue
        activations = model.features(to_raw(images.to(device)), layers)
        for name in layers:
            parts[name].append(pool_activation(activations[name]))
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


def knn_evaluate(
    model: SplitBrain,
    data: LabelledData,
    layers: list[str] | None = None,
    ks: tuple[int, ...] = DEFAULT_KS,
    temperature: float = TEMPERATURE,
    batch_size: int = 256,
    workers: int = 2,
    accelerator: str = "auto",
    crop: int | None = None,
    resize: int | None = None,
    name: str = "model",
) -> KNNResult:
    """kNN accuracy of ``model``'s frozen, pooled layers: ``data``'s training images are the
    neighbours, its test images the queries (centre crops, no augmentation)."""
    layers = check_layers(model, layers or ["conv5"], name)
    device = device_for(accelerator)
    model.eval().to(device, memory_format=torch.channels_last)
    resize, crop = eval_geometry(model.config.preset, crop, resize)
    transform = EvalTransform(resize, crop)
    features = {}
    for split in ("train", "test"):
        batches = loader(data.dataset(split, transform), batch_size, workers)
        features[split] = pooled_features(model, batches, layers, device)
    (train, train_labels), (test, test_labels) = features["train"], features["test"]
    top1, top5 = knn_accuracy(
        train, train_labels, test, test_labels, data.num_classes, ks, temperature
    )
    return KNNResult(
        name, top1, top5 if data.num_classes > 10 else {}, len(train_labels), len(test_labels)
    )


def _spread(source: ImageSource, transform: EvalTransform, count: int) -> Subset:
    """``count`` items at even spacing (every class of a class-sorted folder is represented),
    left unscanned: an unreadable item is skipped at load time."""
    dataset = ImageDataset(source, transform)
    labelled = np.flatnonzero(source.labels[dataset.indices] >= 0)
    step = max(1, len(labelled) // count)
    return Subset(dataset, labelled[::step][:count].tolist())


class KNNProbeCallback(L.Callback):
    """A kNN health check of the pre-training model every ``every_n_steps`` steps and at the
    end of training, logged as ``knn/top1`` (k = ``k``) through the trainer's logger.

    It runs on global rank 0 only (the other ranks wait at their next synchronisation), with
    the model in eval mode and torch's random state restored afterwards, so the training run
    continues exactly as without it. ``train_items`` and ``test_items`` images, evenly spread
    over each split, are neighbours and queries; their cost is one forward pass each.
    """

    def __init__(
        self,
        every_n_steps: int,
        train_source: ImageSource,
        test_source: ImageSource,
        layer: str = "conv5",
        k: int = 20,
        temperature: float = TEMPERATURE,
        train_items: int = 5000,
        test_items: int = 1000,
        batch_size: int = 256,
        crop: int | None = None,
        resize: int | None = None,
    ) -> None:
        if every_n_steps < 1:
            raise ValueError(f"every_n_steps must be positive, got {every_n_steps}")
        require_labels(train_source)
        require_labels(test_source)
        self.every_n_steps = every_n_steps
        self.sources = (train_source, test_source)
        self.layer = layer
        self.k = k
        self.temperature = temperature
        self.items = (train_items, test_items)
        self.batch_size = batch_size
        self.geometry = (crop, resize)
        self.num_classes = LabelledData(train_source, test_source, progress=False).num_classes
        self.last_step = -1
        self.history: list[tuple[int, float]] = []

    @classmethod
    def from_spec(
        cls, every_n_steps: int, data: str, test_data: str | None = None, **options
    ) -> KNNProbeCallback:
        """From data specs: ``data``'s train split and ``test_data``'s (default ``data``'s)
        test split; ``options`` as for the constructor."""
        return cls(
            every_n_steps,
            open_source(data, split="train"),
            open_source(test_data or data, split="test"),
            **options,
        )

    def on_fit_start(self, trainer, pl_module) -> None:
        check_layers(getattr(pl_module, "model", pl_module), [self.layer])  # fail before step 1

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        if trainer.global_step % self.every_n_steps == 0:
            self.probe(trainer, pl_module)

    def on_train_end(self, trainer, pl_module) -> None:
        self.probe(trainer, pl_module)

    def probe(self, trainer: L.Trainer, pl_module: L.LightningModule) -> float | None:
        """Run the check now (once per step); returns top-1 in percent on rank 0."""
        step = trainer.global_step
        if step == self.last_step or not trainer.is_global_zero:
            return None
        self.last_step = step
        model: SplitBrain = getattr(pl_module, "model", pl_module)
        resize, crop = eval_geometry(model.config.preset, *self.geometry)
        transform = EvalTransform(resize, crop)
        device = pl_module.device
        was_training = model.training
        model.eval()
        try:
            with torch.random.fork_rng(devices=[device] if device.type == "cuda" else []):
                features = [
                    pooled_features(
                        model,
                        loader(_spread(source, transform, n), self.batch_size),
                        [self.layer],
                        device,
                    )
                    for source, n in zip(self.sources, self.items, strict=True)
                ]
        finally:
            model.train(was_training)
        (train, train_labels), (test, test_labels) = features
        top1, _ = knn_accuracy(
            train, train_labels, test, test_labels, self.num_classes, (self.k,), self.temperature
        )
        accuracy = top1[self.k][self.layer]
        self.history.append((step, accuracy))
        if trainer.logger is not None:
            trainer.logger.log_metrics({"knn/top1": accuracy}, step=step)
        rank_zero_info(f"step {step}: kNN top-1 {accuracy:.1f}% ({self.layer}, k={self.k})")
        return accuracy
