"""Training and scoring a segmentation head on a pre-trained network, resumable like
pre-training: the same deterministic sample stream, rolling atomic checkpoints, stop signals
that checkpoint the step reached, and a recipe guard (``run.py`` holds the folder).

Training crops: each frame's shorter side drawn from ``resize..resize_max`` (random scale), a
random ``crop`` square, mirrored half the time; the mask follows by nearest pixel. Loss: pixel
cross-entropy, ``IGNORE`` pixels left out, optionally weighted by median frequency (SegNet).
Scoring: every frame whole, its shorter side at ``resize``, the logits upsampled bilinearly to
the mask's own size, one confusion matrix over the split (``metrics.py``).
"""

from __future__ import annotations

import dataclasses
import logging
import math
import time
from dataclasses import dataclass, field
from pathlib import Path

import lightning as L
import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ..data import BadImageLog, ImageDataset, TrainTransform
from ..data.masks import IGNORE, MaskSource
from ..device import autocast, device_for, resolve_precision
from ..evaluate.finetune import trainable_split
from ..extract import model_input
from ..models import SplitBrain
from ..progress import track
from ..runs.fitting import SGDRecipe, sgd_with_steps
from ..runs.resumable import fit_resumable
from ..segmentation import (
    CLASS_WEIGHTS,
    FRAME_SIDE,
    HYPERCOLUMN_LAYERS,
    build_head,
    seen_at,
    upsampled,
)
from .metrics import SegmentationScores, confusion_matrix

log = logging.getLogger("splitbrain.segment")

#: Where the trunk's BatchNorm statistics come from: its weights (the pre-training data's), or
#: the training frames of the task ("target", as the Gaussian baseline's always do).
BN_STATS = ("weights", "target")


@dataclass
class SegmentConfig(SGDRecipe):
    """Settings of one segmentation training; the defaults suit CamVid at 240x180 on a CPU."""

    head: str = "hypercolumn"  # or fcn32s
    layers: tuple[str, ...] = HYPERCOLUMN_LAYERS  # hypercolumn: its layers (each also alone)
    freeze_through: str | None = None  # fcn32s: this layer and those below stay frozen
    resize: int | None = None  # shorter side of training and scoring frames; FRAME_SIDE
    resize_max: int | None = None  # random scale up to this (default 1.5 x resize)
    crop: int = 160
    epochs: float = 20
    batch_size: int = 8
    class_weights: str = CLASS_WEIGHTS[0]
    bn_stats: str = "weights"  # the trunk's BatchNorm statistics: its weights', or "target"
    workers: int = 2
    accelerator: str = "auto"
    precision: str | None = None  # the trunk's; None: bf16-mixed where native, else 32-true
    seed: int = 0
    checkpoint_every: int = 100
    progress: bool = True

    def __post_init__(self) -> None:
        self.resize = self.resize or FRAME_SIDE
        if self.resize_max is None:
            self.resize_max = round(1.5 * self.resize)
        if not 0 < self.crop <= self.resize <= self.resize_max:
            raise ValueError(
                f"need crop <= resize <= resize_max, got {self.crop}, {self.resize}, "
                f"{self.resize_max}"
            )
        if self.class_weights not in CLASS_WEIGHTS:
            raise ValueError(f"class weights: choose from {', '.join(CLASS_WEIGHTS)}")
        if self.bn_stats not in BN_STATS:
            raise ValueError(f"BatchNorm statistics: choose from {', '.join(BN_STATS)}")

    def columns(self) -> list[str]:
        """The heads trained side by side, one column of the report each."""
        if self.head == "fcn32s":
            return ["fcn32s"]
        single = list(self.layers) if len(self.layers) > 1 else []
        return [*single, "hypercolumn"]

    def head_layers(self, column: str) -> tuple[str, ...]:
        if column == "fcn32s":
            return ("fc7",)
        return tuple(self.layers) if column == "hypercolumn" else (column,)

    def total_steps(self, items: int) -> int:
        return max(1, math.ceil(self.epochs * items / self.batch_size))


@dataclass
class SegmentResult:
    """Scores per column (a head), on the scoring split."""

    name: str
    scores: dict[str, SegmentationScores]
    train_items: int = 0
    test_items: int = 0
    seconds: dict[str, float] = field(default_factory=dict)
    images_per_second: float = 0.0
    model: SplitBrain | None = None  # the trunk with the main head, ready to save

    def to_dict(self) -> dict:
        return {
            "name": self.name,
            "scores": {k: dataclasses.asdict(v) for k, v in self.scores.items()},
            "train_items": self.train_items,
            "test_items": self.test_items,
            "seconds": {k: round(v, 1) for k, v in self.seconds.items()},
            "images_per_second": round(self.images_per_second, 2),
        }

    @classmethod
    def from_dict(cls, data: dict) -> SegmentResult:
        scores = {k: SegmentationScores.from_dict(v) for k, v in data["scores"].items()}
        return cls(
            data["name"], scores, data["train_items"], data["test_items"], data["seconds"],
            data["images_per_second"],
        )  # fmt: skip


def median_frequency_weights(source: MaskSource, indices: np.ndarray) -> Tensor:
    """SegNet's class weights: median(f) / f_c, where f_c is class c's pixels over the pixels
    of the frames in which c appears (Eigen & Fergus 2015); 0 for a class never seen."""
    classes = source.num_classes
    pixels = torch.zeros(classes, dtype=torch.float64)
    present_in = torch.zeros(classes, dtype=torch.float64)
    for i in indices:
        mask = torch.from_numpy(source.read_mask(int(i)))
        counts = torch.bincount(mask.reshape(-1).long(), minlength=256)[:classes].double()
        labelled = float((mask != IGNORE).sum())
        pixels += counts
        present_in += (counts > 0).double() * labelled
    frequency = torch.where(present_in > 0, pixels / present_in.clamp(min=1), torch.nan)
    weights = frequency.nanmedian() / frequency
    return torch.nan_to_num(weights, nan=0.0).float()


def class_weights(source: MaskSource, indices: np.ndarray, kind: str) -> Tensor | None:
    """The loss's class weights (``CLASS_WEIGHTS``): median frequency, its square root (rare
    classes lifted less: fewer large blobs of pole or pedestrian drawn over buildings), or
    None for a plain loss."""
    if kind == "none":
        return None
    weights = median_frequency_weights(source, indices)
    return weights.sqrt() if kind == "sqrt-median-freq" else weights


class SegmentTask(L.LightningModule):
    """Heads (one per column) on one trunk forward: the trunk frozen (hypercolumn) or trained
    above ``freeze_through`` (fcn32s)."""

    def __init__(
        self, model: SplitBrain, config: SegmentConfig, classes: int, weights: Tensor | None,
        total_steps: int,
    ) -> None:  # fmt: skip
        super().__init__()
        self.model = model.to(memory_format=torch.channels_last)
        self.config = config
        self.total_steps = total_steps
        self.layers = sorted(
            {n for c in config.columns() for n in config.head_layers(c)},
            key=model.layer_names.index,
        )
        self.heads = nn.ModuleDict()
        for column in config.columns():
            used = config.head_layers(column)
            channels = [model.layer_channels(n) for n in used]
            strides = [model.stride(n) for n in used]
            self.heads[column] = build_head(config.head, channels, classes, strides)
        top = self.layers[-1]
        freeze = top if config.head == "hypercolumn" else config.freeze_through
        self.frozen, self.trained = trainable_split(model, top, freeze)
        self.register_buffer("weights", weights if weights is not None else torch.ones(classes))

    def train(self, mode: bool = True) -> SegmentTask:
        super().train(mode)
        for module in self.frozen:
            module.eval()
        if not self.trained:
            self.model.eval()
        return self

    def on_train_start(self) -> None:
        self.train()

    def logits(self, raw: Tensor) -> dict[str, Tensor]:
        """Float RGB (N,3,H,W) in [0, 1] -> each column's logits (N, classes, H, W)."""
        features = self.model.features(raw, self.layers, grad=bool(self.trained))
        size = raw.shape[-2:]
        return {
            column: head([features[n] for n in self.config.head_layers(column)], size)
            for column, head in self.heads.items()
        }

    def training_step(self, batch: tuple[Tensor, Tensor], batch_idx: int):
        frames, _ = batch
        if frames.shape[0] == 0:
            return None
        images, masks = frames[:, :3], frames[:, 3].long()
        if not bool((masks != IGNORE).any()):  # nothing to learn from: a 0/0 loss
            return None
        raw, _ = model_input(self.model, images)
        losses = torch.stack([
            F.cross_entropy(logits.float(), masks, self.weights, ignore_index=IGNORE)
            for logits in self.logits(raw).values()
        ])  # fmt: skip
        # each head learns from its own loss; the one shown is their mean, a cross-entropy
        self.log("loss", losses.mean(), prog_bar=True)
        return losses.sum()

    def configure_optimizers(self):
        params = [p for p in self.parameters() if p.requires_grad]
        optimiser, schedule = sgd_with_steps(params, self.config, self.total_steps)
        return {"optimizer": optimiser, "lr_scheduler": {"scheduler": schedule, "interval": "step"}}


@torch.no_grad()
def score(
    task: SegmentTask, source: MaskSource, indices: np.ndarray, resize: int,
    device: torch.device, precision: str, batch_size: int = 8, progress: bool = True,
) -> dict[str, SegmentationScores]:  # fmt: skip
    """Each column's scores over the frames ``indices`` of ``source``: each frame whole, seen
    as ``SplitBrain.segment`` sees it (its shorter side at ``resize``, the logits upsampled to
    the mask's size), frames of one size batched."""
    classes = source.num_classes
    confusion = {c: torch.zeros(classes, classes, dtype=torch.int64) for c in task.heads}
    task.to(device).eval()
    pending: list[tuple[Tensor, Tensor]] = []

    def flush() -> None:
        images = torch.stack([image for image, _ in pending]).to(device)
        raw, _ = model_input(task.model, images)
        with autocast(device, precision):
            outputs = task.logits(seen_at(raw, resize))
        for column, logits in outputs.items():
            for k, (_, mask) in enumerate(pending):
                full = upsampled(logits[k : k + 1], mask.shape)
                confusion[column] += confusion_matrix(full.argmax(1).cpu(), mask, classes)
        pending.clear()

    for i in track(indices, desc="scoring", unit="frame", enabled=progress):
        frame, _, _ = source.load_with_note(int(i))
        chw = torch.from_numpy(frame).permute(2, 0, 1)
        if pending and pending[0][0].shape != chw[:3].shape:
            flush()
        pending.append((chw[:3], chw[3]))
        if len(pending) == batch_size:
            flush()
    if pending:
        flush()
    return {c: SegmentationScores.from_confusion(m) for c, m in confusion.items()}


def with_segmenter(task: SegmentTask, classes: list[str]) -> SplitBrain:
    """The trunk and the main head (the last column) as one ``SplitBrain`` that ``sb.load``
    rebuilds and whose ``segment`` gives that head's logits."""
    column = task.config.columns()[-1]
    head = (task.config.head, task.config.head_layers(column), tuple(classes))
    model = task.model
    segmenter = SplitBrain(dataclasses.replace(model.config, segmenter=head))
    missing, _ = segmenter.load_state_dict(model.state_dict(), strict=False)
    assert all(key.startswith("segmenter.") for key in missing), missing  # the trunk is whole
    segmenter.segmenter.load_state_dict(task.heads[column].state_dict())
    segmenter.provenance = dict(model.provenance)
    return segmenter.eval()


def train_segmenter(
    model: SplitBrain,
    train: MaskSource,
    train_log: BadImageLog,
    test: MaskSource,
    test_indices: np.ndarray,
    config: SegmentConfig,
    folder: Path,
    name: str = "model",
    weights: Tensor | None = None,
) -> SegmentResult:
    """Train ``config``'s heads on ``model`` (in place) with ``train``'s good frames, resuming
    from ``folder/checkpoints``, and score them on ``test``; raises ``Interrupted`` when a
    stop signal ended the training (its checkpoint written)."""
    if model.split.space.data != "images":
        raise ValueError(
            f"{name}: segmentation reads photographs; this network reads {model.split.space.data}"
        )
    L.seed_everything(config.seed, workers=True, verbose=False)
    transform = TrainTransform(
        config.resize, config.crop, resize_max=config.resize_max, nearest=slice(3, 4)
    )
    dataset = ImageDataset(train, transform, log=train_log, min_side=1, reduced_decode=False)
    total_steps = config.total_steps(len(dataset))
    task = SegmentTask(model, config, train.num_classes, weights, total_steps)
    device = device_for(config.accelerator, "accelerator")
    precision, _ = resolve_precision(config.precision, device)
    done = fit_resumable(
        task, dataset, config.batch_size, total_steps, folder, device, precision,
        seed=config.seed, workers=config.workers, checkpoint_every=config.checkpoint_every,
        progress=config.progress, name=name,
    )  # fmt: skip
    seconds = {"train": done.seconds}
    rate = done.steps * config.batch_size / max(done.seconds, 1e-9)
    start = time.perf_counter()
    scores = score(
        task,
        test,
        test_indices,
        config.resize,
        device,
        precision,
        config.batch_size,
        config.progress,
    )
    seconds["test"] = time.perf_counter() - start
    return SegmentResult(
        name, scores, len(dataset), len(test_indices), seconds, rate,
        with_segmenter(task.cpu(), train.classes),
    )  # fmt: skip
