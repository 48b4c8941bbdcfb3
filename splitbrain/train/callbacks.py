"""Callbacks of pre-training: a kNN health check of the representation as it trains."""

from __future__ import annotations

import logging

import lightning as L
import numpy as np
import torch
from torch.utils.data import Subset

from ..data import EvalTransform, ImageDataset, ImageSource, open_source
from ..evaluate.data import LabelledData, loader, require_labels
from ..evaluate.features import check_layers
from ..evaluate.knn import TEMPERATURE, knn_accuracy, pooled_features
from ..models import SplitBrain

log = logging.getLogger("splitbrain.train")


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
        if trainer.global_step >= trainer.max_steps:  # not when a stop signal ended it early
            self.probe(trainer, pl_module)

    def probe(self, trainer: L.Trainer, pl_module: L.LightningModule) -> float | None:
        """Run the check now (once per step); returns top-1 in percent on rank 0."""
        step = trainer.global_step
        if step == self.last_step or not trainer.is_global_zero:
            return None
        self.last_step = step
        model: SplitBrain = getattr(pl_module, "model", pl_module)
        resize, crop = model.geometry(*self.geometry)
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
        log.info("step %d: kNN top-1 %.1f%% (%s, k=%d)", step, accuracy, self.layer, self.k)
        return accuracy
