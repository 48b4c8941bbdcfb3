"""Training and scoring a detector on a pre-trained network, resumable like segmentation: the
deterministic sample stream, rolling atomic checkpoints, stop signals that checkpoint the step
reached (``run.py`` holds the folder).

Training images: whole, mirrored half the time with their boxes (drawn from the stream's
per-sample seed), and seen at a shorter side drawn per step from ``side..side_max`` (random
scale; drawn from the seed and the step, so a resumed run draws the same); crowd and difficult
regions are left out of training, as torchvision's references leave crowds out. Loss:
torchvision's Faster R-CNN losses (RPN objectness and box regression, the box head's
classification and regression), summed. Scoring: ``SplitBrain.detect`` on every scored image
at ``side``, then ``metrics.detection_scores``.
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
from torch import Tensor
from torch.utils.data import Dataset

from ..data import BadImageLog
from ..data.boxes import BoxSource
from ..detection import DETECTION_SIDE, anchor_sizes
from ..device import autocast, device_for, resolve_precision
from ..evaluate.finetune import trainable_split
from ..models import SplitBrain
from ..progress import track
from ..runs.fitting import SGDRecipe, sgd_with_steps
from ..runs.resumable import fit_resumable
from ..runs.stream import sample_seed
from .metrics import Detections, DetectionScores, detection_scores

log = logging.getLogger("splitbrain.detect")

#: The layer the frozen mode fixes the trunk through: every conv layer, the box head's fc6
#: and fc7 trained (the detection analogue of the linear probe).
FROZEN_THROUGH = "pool5"


@dataclass
class DetectConfig(SGDRecipe):
    """Settings of one detector's training; the defaults suit CamVid on a CPU."""

    lr_milestones: tuple[float, ...] = (0.75,)  # Fast R-CNN's one step, late in the run
    freeze_through: str | None = FROZEN_THROUGH  # None: fine-tune every layer
    side: int | None = None  # shorter side of the images; DETECTION_SIDE
    side_max: int | None = None  # random scale up to this (default 1.25 x side)
    epochs: float = 12
    batch_size: int = 2
    workers: int = 2
    accelerator: str = "auto"
    precision: str | None = None  # None: bf16-mixed where native, else 32-true
    seed: int = 0
    checkpoint_every: int = 100
    progress: bool = True

    def __post_init__(self) -> None:
        self.side = self.side or DETECTION_SIDE
        if self.side_max is None:
            self.side_max = round(1.25 * self.side)
        if not 0 < self.side <= self.side_max:
            raise ValueError(f"need 0 < side <= side_max, got {self.side}, {self.side_max}")

    def sides(self) -> list[int]:
        """The shorter sides training draws from (every 16 pixels, and ``side_max``)."""
        return sorted({*range(self.side, self.side_max, 16), self.side_max})

    def total_steps(self, items: int) -> int:
        return max(1, math.ceil(self.epochs * items / self.batch_size))


@dataclass
class DetectResult:
    """Scores on the scored images, and what it took."""

    name: str
    scores: DetectionScores
    train_items: int = 0
    test_items: int = 0
    seconds: dict[str, float] = field(default_factory=dict)
    images_per_second: float = 0.0
    model: SplitBrain | None = None  # the trunk with its detector, ready to save

    def to_dict(self) -> dict:
        return {
            "name": self.name,
            "scores": self.scores.to_dict(),
            "train_items": self.train_items,
            "test_items": self.test_items,
            "seconds": {k: round(v, 1) for k, v in self.seconds.items()},
            "images_per_second": round(self.images_per_second, 2),
        }

    @classmethod
    def from_dict(cls, data: dict) -> DetectResult:
        return cls(
            data["name"], DetectionScores.from_dict(data["scores"]), data["train_items"],
            data["test_items"], data["seconds"], data["images_per_second"],
        )  # fmt: skip


class DetectionImages(Dataset):
    """The usable images of a ``BoxSource`` (uint8 (3, H, W)) and their objects (crowd and
    difficult ones left out), mirrored half the time when ``mirror``."""

    def __init__(self, source: BoxSource, indices: np.ndarray, mirror: bool = True) -> None:
        self.source, self.indices, self.mirror = source, np.asarray(indices), mirror

    def __len__(self) -> int:
        return len(self.indices)

    def __getitem__(self, k: int) -> tuple[Tensor, dict[str, Tensor]]:
        i = int(self.indices[k])
        rgb = self.source[i]
        objects = self.source.boxes(i)
        kept = ~objects.ignored
        image = torch.from_numpy(np.ascontiguousarray(rgb)).permute(2, 0, 1)
        boxes = torch.from_numpy(objects.boxes[kept].copy())
        if self.mirror and bool(torch.rand(()) < 0.5):
            image = image.flip(-1)
            boxes[:, [0, 2]] = image.shape[-1] - boxes[:, [2, 0]]
        return image.contiguous(), {
            "boxes": boxes,
            "labels": torch.from_numpy(objects.labels[kept]),
        }

    @staticmethod
    def collate(batch: list) -> tuple[list[Tensor], list[dict[str, Tensor]]]:
        return [image for image, _ in batch], [target for _, target in batch]


def data_anchors(source: BoxSource, indices: np.ndarray, side: int) -> tuple[int, ...]:
    """Anchor sizes for the objects of ``source``'s images ``indices``, seen at ``side``."""
    sides = []
    for i in indices:
        objects = source.boxes(int(i))
        scale = side / min(source.size(int(i)))
        kept = objects.boxes[~objects.ignored]
        sides += (np.sqrt((kept[:, 2] - kept[:, 0]) * (kept[:, 3] - kept[:, 1])) * scale).tolist()
    return anchor_sizes(np.asarray(sides))


def with_detector(
    model: SplitBrain, classes: list[str], anchors: tuple[int, ...], side: int
) -> SplitBrain:
    """``model``'s trunk with a new detector for ``classes`` (``splitbrain.detection``)."""
    config = dataclasses.replace(model.config, detector=(tuple(classes), anchors, side))
    detector = SplitBrain(config)
    missing, _ = detector.load_state_dict(model.state_dict(), strict=False)
    assert all(key.startswith("detector.") for key in missing), missing  # the trunk is whole
    detector.provenance = dict(model.provenance)
    return detector


class DetectTask(L.LightningModule):
    """A detector trained above ``freeze_through`` of its trunk (the box head's fc6/fc7, the
    proposals and the predictor always)."""

    def __init__(self, model: SplitBrain, config: DetectConfig, total_steps: int) -> None:
        super().__init__()
        self.model, self.config, self.total_steps = model, config, total_steps
        self.frozen, self.trained = trainable_split(model, "fc7", config.freeze_through)
        model.detector.requires_grad_(True)
        conv = set(model.layer_names[: model.layer_names.index(FROZEN_THROUGH) + 1])
        frozen = set(model.layer_names[: model.layer_names.index(config.freeze_through) + 1]
                     if config.freeze_through else [])  # fmt: skip
        model.detector.backbone.trained = bool(conv - frozen)
        self.sides = config.sides()

    def train(self, mode: bool = True) -> DetectTask:
        super().train(mode)
        for module in self.frozen:
            module.eval()
        return self

    def on_train_start(self) -> None:
        self.train()

    def training_step(self, batch: tuple[list[Tensor], list[dict]], batch_idx: int):
        images, targets = batch
        draw = sample_seed(self.config.seed, self.global_step) % len(self.sides)
        self.model.detector.transform.min_size = (self.sides[draw],)
        losses = self.model.detector([image.float() / 255 for image in images], targets)
        loss = torch.stack(list(losses.values())).sum()
        self.log("loss", loss, prog_bar=True)
        self.log_dict({f"loss/{k.removeprefix('loss_')}": v for k, v in losses.items()})
        return loss

    def configure_optimizers(self):
        params = [p for p in self.parameters() if p.requires_grad]
        optimiser, schedule = sgd_with_steps(params, self.config, self.total_steps)
        return {"optimizer": optimiser, "lr_scheduler": {"scheduler": schedule, "interval": "step"}}


@torch.no_grad()
def score(
    model: SplitBrain, source: BoxSource, indices: np.ndarray, device: torch.device,
    precision: str, batch_size: int = 2, progress: bool = True,
) -> DetectionScores:  # fmt: skip
    """The detector's scores on the images ``indices`` of ``source``, found by
    ``SplitBrain.detect`` as Python finds them."""
    truths, found = [], []
    model.to(device)
    batches = [indices[k : k + batch_size] for k in range(0, len(indices), batch_size)]
    for batch in track(batches, desc="scoring", unit="batch", enabled=progress):
        images = [torch.from_numpy(source[int(i)]).permute(2, 0, 1) for i in batch]
        with autocast(device, precision):
            outputs = model.detect([(image.float() / 255).to(device) for image in images])
        for i, output in zip(batch, outputs, strict=True):
            truths.append(source.boxes(int(i)))
            found.append(Detections(*(output[k].float().cpu().numpy() if k != "labels"
                                       else output[k].cpu().numpy()
                                       for k in ("boxes", "scores", "labels"))))  # fmt: skip
    return detection_scores(truths, found, source.classes)


def train_detector(
    model: SplitBrain,
    train: BoxSource,
    train_log: BadImageLog,
    test: BoxSource,
    test_indices: np.ndarray,
    anchors: tuple[int, ...],
    config: DetectConfig,
    folder: Path,
    name: str = "model",
) -> DetectResult:
    """Train a detector on ``model``'s trunk with ``train``'s good images, resuming from
    ``folder/checkpoints``, and score it on ``test``; raises ``Interrupted`` when a stop signal
    ended the training (its checkpoint written)."""
    if model.split.space.data != "images":
        raise ValueError(f"{name}: detection reads photographs; this network reads "
                         f"{model.split.space.data}")  # fmt: skip
    L.seed_everything(config.seed, workers=True, verbose=False)
    detector = with_detector(model, train.classes, anchors, config.side)
    dataset = DetectionImages(train, train_log.good_indices())
    total_steps = config.total_steps(len(dataset))
    task = DetectTask(detector, config, total_steps)
    device = device_for(config.accelerator, "accelerator")
    precision, _ = resolve_precision(config.precision, device)
    done = fit_resumable(
        task, dataset, config.batch_size, total_steps, folder, device, precision,
        seed=config.seed, workers=config.workers, checkpoint_every=config.checkpoint_every,
        progress=config.progress, name=name,
    )  # fmt: skip
    seconds = {"train": done.seconds}
    rate = done.steps * config.batch_size / max(done.seconds, 1e-9)
    detector = detector.cpu().eval()
    detector.detector.transform.min_size = (config.side,)
    start = time.perf_counter()
    scores = score(detector, test, test_indices, device, precision, config.batch_size,
                   config.progress)  # fmt: skip
    seconds["test"] = time.perf_counter() - start
    return DetectResult(name, scores, len(dataset), len(test_indices), seconds, rate,
                        detector.cpu())  # fmt: skip
