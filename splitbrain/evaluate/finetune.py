"""Fine-tuning (SPEC section 5): the whole network, or everything above a chosen layer, with a
new linear head on spatially averaged fc7 (or conv5) features.

Single-label data is scored by top-1 (and top-5 above 10 classes); multi-label data (PASCAL VOC
classification) by mean average precision, both the area under the precision-recall curve and
VOC 2007's 11-point interpolation, with a label matrix of 1 (present), 0 (absent) and -1
(ignored, VOC's "difficult") per image and class. Testing takes the centre crop, or the
PASCAL protocol's 10 crops (``ten_crop``). Training runs on Lightning: the trunk's
forward and backward dominate, as in pre-training. Frozen layers stay in eval mode (their
BatchNorm statistics do not move); trained layers' BatchNorm use batch statistics.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field, replace

import lightning as L
import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ..data import EvalTransform, TrainTransform
from ..device import device_for, resolve_precision
from ..extract import activation_shapes, model_input
from ..models import PRESET_INPUT, SplitBrain
from ..runs.fitting import SGDRecipe, fit_on_one_device, sgd_with_steps
from .data import LabelledData, loader
from .metrics import (
    average_precision,
    average_precision_11point,
    mean_average_precision,
    topk_correct,
)


@dataclass
class FinetuneConfig(SGDRecipe):
    """Settings of a fine-tuning run; the defaults suit CIFAR-10-sized data."""

    head_layer: str | None = None  # default: fc7 where the model has it, else conv5
    freeze_through: str | None = None  # this layer and all below stay frozen; None: none
    epochs: int = 10
    batch_size: int = 128
    crop: int | None = None
    resize: int | None = None
    workers: int = 2
    accelerator: str = "auto"
    precision: str | None = None  # None: bf16-mixed where the device has native bf16
    seed: int = 0
    progress: bool = True
    ten_crop: bool = False  # test on 10 crops (corners, centre, mirrored) instead of the centre


@dataclass
class FinetuneResult:
    """``scores``: top1 (and top5), or mAP of both kinds ("mAP", "mAP (11-point)"), in percent;
    for multi-label, ``per_class_ap`` (area) and ``per_class_ap_11point`` as fractions, NaN for
    a class without a positive test image."""

    name: str
    head_layer: str
    freeze_through: str | None
    scores: dict[str, float]
    per_class_ap: list[float] = field(default_factory=list)
    per_class_ap_11point: list[float] = field(default_factory=list)
    train_items: int = 0
    test_items: int = 0
    seconds: dict[str, float] = field(default_factory=dict)
    classes: list[str] = field(default_factory=list)  # the classifier's, in output order
    model: SplitBrain | None = None  # the fine-tuned network with its classifier


def default_head_layer(model: SplitBrain) -> str:
    return "fc7" if "fc7" in model.layer_names else "conv5"


def trainable_split(
    model: SplitBrain, top: str, freeze_through: str | None
) -> tuple[list[nn.Module], list[nn.Module]]:
    """(frozen, trained) layer modules of every tower up to ``top``, the head's input: those
    up to ``freeze_through`` get no gradient (and are to stay in eval mode), the rest train."""
    names = model.layer_names
    for layer in filter(None, (top, freeze_through)):
        if layer not in names:
            raise ValueError(f"the model has no layer {layer} (it has {', '.join(names)})")
    if freeze_through and names.index(freeze_through) > names.index(top):
        raise ValueError(f"cannot freeze through {freeze_through}, above the head's input {top}")
    used = names[: names.index(top) + 1]
    frozen_names = used[: names.index(freeze_through) + 1] if freeze_through else []
    towers = [e.tower.layers for e in model.encoders]
    model.requires_grad_(False)
    frozen = [t[n] for t in towers for n in frozen_names]
    trained = [t[n] for t in towers for n in used if n not in frozen_names]
    for module in trained:
        module.requires_grad_(True)
    return frozen, trained


class FinetuneNet(nn.Module):
    """A model's towers up to ``head_layer``, concatenated, averaged over space, then a new
    linear layer. Layers up to ``freeze_through`` get no gradient and stay in eval mode."""

    def __init__(
        self, model: SplitBrain, outputs: int, head_layer: str, freeze_through: str | None = None
    ) -> None:
        super().__init__()
        self.frozen, self.trained = trainable_split(model, head_layer, freeze_through)
        self.model = model.to(memory_format=torch.channels_last)
        self.head_layer = head_layer
        channels = activation_shapes(model, PRESET_INPUT[model.config.preset])[head_layer][0]
        self.head = nn.Linear(channels, outputs)

    def train(self, mode: bool = True) -> FinetuneNet:
        super().train(mode)
        for module in self.frozen:
            module.eval()
        return self

    def trainable_parameters(self) -> list[nn.Parameter]:
        return [p for p in self.parameters() if p.requires_grad]

    def forward(self, images: Tensor) -> Tensor:
        """uint8 (N,3,H,W) images -> (N, outputs) logits."""
        raw, valid = model_input(self.model, images)
        x = self.model.features(raw, self.head_layer, valid, grad=True)[self.head_layer]
        return self.head(x.mean((2, 3)))


def with_classifier(net: FinetuneNet, classes: list[str]) -> SplitBrain:
    """The fine-tuned network as one ``SplitBrain`` whose config holds its classifier, so that
    ``sb.load`` rebuilds it and ``classify`` gives the logits ``net`` gives."""
    model = net.model
    config = replace(model.config, classifier=(net.head_layer, tuple(classes)))
    tuned = SplitBrain(config)
    tuned.load_state_dict(model.state_dict(), strict=False)
    tuned.classifier.load_state_dict(net.head.state_dict())
    return tuned.eval()


def _loss(logits: Tensor, target: Tensor, multilabel: bool) -> Tensor:
    if not multilabel:
        return F.cross_entropy(logits, target)
    known = target >= 0
    return F.binary_cross_entropy_with_logits(logits[known], target[known].float())


class _FinetuneTask(L.LightningModule):
    def __init__(
        self, net: FinetuneNet, config: FinetuneConfig, total_steps: int, targets: Tensor | None
    ) -> None:
        super().__init__()
        self.net = net
        self.config = config
        self.total_steps = total_steps
        self.targets = targets  # multi-label: rows by source index; None: single-label

    def on_train_start(self) -> None:
        self.net.train()  # Lightning keeps submodules' modes; models arrive in eval mode

    def training_step(self, batch: tuple[Tensor, Tensor], batch_idx: int):
        images, y = batch
        if images.shape[0] == 0:
            return None
        if self.targets is not None:
            y = self.targets[y.cpu()].to(images.device)
        loss = _loss(self.net(images), y, self.targets is not None)
        self.log("loss", loss, prog_bar=True)
        return loss

    def configure_optimizers(self):
        optimiser, schedule = sgd_with_steps(
            self.net.trainable_parameters(), self.config, self.total_steps
        )
        return {"optimizer": optimiser, "lr_scheduler": {"scheduler": schedule, "interval": "step"}}


def ten_crops(images: Tensor, crop: int) -> Tensor:
    """(N, C, H, W) -> (10, N, C, crop, crop): the top-left, top-right, bottom-left,
    bottom-right and centre squares (the centre as ``EvalTransform`` takes it), then the same
    five mirrored; torchvision's ``TenCrop`` order. Runs wherever ``images`` are."""
    bottom, right = images.shape[-2] - crop, images.shape[-1] - crop
    corners = ((0, 0), (0, right), (bottom, 0), (bottom, right), (bottom // 2, right // 2))
    five = torch.stack([images[..., y : y + crop, x : x + crop] for y, x in corners])
    return torch.cat([five, five.flip(-1)])


def eval_logits(net: FinetuneNet, images: Tensor, crop: int | None) -> Tensor:
    """``net``'s logits for a batch of test images; with ``crop``, the mean of its logits over
    the images' ten crops (``ten_crops``): logits rather than probabilities, one rule for
    softmax and sigmoid heads."""
    if crop is None:
        return net(images)
    return torch.stack([net(view) for view in ten_crops(images, crop)]).mean(0)


def load_targets(path: str, count: int) -> Tensor:
    """A multi-label matrix (count, C) of 1 / 0 / -1 from a .npy file."""
    matrix = np.load(path, allow_pickle=False)
    if matrix.ndim != 2 or len(matrix) != count:
        raise ValueError(f"{path}: expected a ({count}, classes) label matrix, got {matrix.shape}")
    if not np.isin(matrix, (-1, 0, 1)).all():
        raise ValueError(f"{path}: labels must be 1 (present), 0 (absent) or -1 (ignored)")
    return torch.from_numpy(matrix.astype(np.int64))


def finetune(
    model: SplitBrain,
    data: LabelledData,
    config: FinetuneConfig | None = None,
    name: str = "model",
    targets: tuple[Tensor, Tensor] | None = None,
) -> FinetuneResult:
    """Fine-tune ``model`` (in place) with a new head on ``data``'s training images and score
    it on its test images. ``targets`` (train, test label matrices indexed by source item)
    make it multi-label, scored by mAP. With ``config.ten_crop`` the test images are resized
    and centre-cropped to a square of the resize's side, and scored on their 10 crops."""
    config = config or FinetuneConfig()
    L.seed_everything(config.seed, verbose=False)
    multilabel = targets is not None
    head_layer = config.head_layer or default_head_layer(model)
    outputs = targets[0].shape[1] if multilabel else data.num_classes
    net = FinetuneNet(model, outputs, head_layer, config.freeze_through)
    resize, crop = model.geometry(config.crop, config.resize)
    train = data.dataset("train", TrainTransform(resize, crop))
    test = data.dataset("test", EvalTransform(resize, resize if config.ten_crop else crop))
    if multilabel:
        train, test = train.with_index(), test.with_index()
    batches = loader(train, config.batch_size, config.workers, shuffle=True, seed=config.seed)
    device = device_for(config.accelerator, "accelerator")
    seconds = {}
    start = time.perf_counter()
    task = _FinetuneTask(net, config, config.epochs * len(batches), targets[0] if targets else None)
    precision, _ = resolve_precision(config.precision, device)
    fit_on_one_device(task, batches, device, config.epochs, precision, config.progress)
    seconds["train"] = time.perf_counter() - start

    start = time.perf_counter()
    net.to(device).eval()
    logits, labels = [], []
    ten_crop_side = crop if config.ten_crop else None
    with torch.no_grad():
        for images, y in loader(test, config.batch_size, config.workers):
            if images.shape[0]:
                logits.append(eval_logits(net, images.to(device), ten_crop_side).float().cpu())
                labels.append(targets[1][y] if multilabel else y)
    logits, labels = torch.cat(logits), torch.cat(labels)
    seconds["test"] = time.perf_counter() - start
    per_class_ap, per_class_ap_11point = [], []
    if multilabel:
        area, per_class_ap = mean_average_precision(logits, labels, average_precision)
        eleven, per_class_ap_11point = mean_average_precision(
            logits, labels, average_precision_11point
        )
        scores = {"mAP": 100.0 * area, "mAP (11-point)": 100.0 * eleven}
    else:
        ks = (1, 5) if outputs > 10 else (1,)
        hits = topk_correct(logits, labels, ks)
        scores = {f"top{k}": 100.0 * n / len(labels) for k, n in hits.items()}
    classes = data.train.classes or [str(k) for k in range(outputs)]
    if len(classes) != outputs:
        classes = [str(k) for k in range(outputs)]
    return FinetuneResult(
        name, head_layer, config.freeze_through, scores, per_class_ap,
        per_class_ap_11point, len(train), len(labels), seconds, classes,
        with_classifier(net.cpu(), classes),
    )  # fmt: skip
