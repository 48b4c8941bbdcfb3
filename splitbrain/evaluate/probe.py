"""The linear probe on frozen features (SPEC section 5), in two modes.

Every chosen layer's activation is resized bilinearly to about 9,000 dimensions
(``splitbrain.extract.probe_grid``), normalised by a BatchNorm without affine parameters whose
statistics are estimated once and then frozen, and classified by a linear layer. The trunk stays
in eval mode without gradients; SGD with momentum 0.9, weight decay 5e-4 and the paper's step decay
(x0.1 after 2/7, 4/7 and 6/7 of the run, its 40k/80k/120k of 140k iterations).

* augmented (default): random crop + mirror; every batch runs the trunk once and all layers'
  heads train jointly on that one forward pass. A Lightning loop: the trunk dominates the
  cost, so Lightning's per-step overhead is noise.
* cached (``cache_features``): the trunk runs once over the un-augmented train and test images;
  the resized features go to float16 files on disk, one per layer and split (4.7 GB for
  CIFAR-10's 50k training images at 5 x ~9,400 dimensions: too much to hold in memory beside
  other work), and each head then trains on its layer's features, normalised and held in
  memory as bfloat16, in a plain torch loop: a head's step takes a few milliseconds, and
  Lightning made it 1.4-4x slower (docs/EVALUATION.md). The heads are independent given the
  features, so training them one layer at a time with the same batch order is the joint
  training, and only one layer's features are in memory at once.
"""

from __future__ import annotations

import logging
import shutil
import tempfile
import time
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import lightning as L
import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ..data import EvalTransform, TrainTransform
from ..device import device_for, native_bf16, resolve_precision
from ..extract import TARGET_DIMS, probe_grids
from ..models import SplitBrain
from ..progress import track
from ..runs.fitting import SGDRecipe, fit_on_one_device, sgd_with_steps
from .data import LabelledData, loader
from .features import DEFAULT_LAYERS, FrozenTrunk, check_layers, describe_grids
from .metrics import topk_correct

log = logging.getLogger("splitbrain.evaluate")

MODES = {
    False: "augmented (random crop + mirror; the trunk runs on every batch)",
    True: "cached features (the trunk ran once over un-augmented images)",
}


@dataclass
class ProbeConfig(SGDRecipe):
    """Settings of a linear probe; the defaults suit CIFAR-10-sized data (50k images)."""

    layers: tuple[str, ...] | None = DEFAULT_LAYERS  # None: every layer the model has
    epochs: int = 30
    batch_size: int = 256
    cache_features: bool = False
    crop: int | None = None  # default: the preset's input side
    resize: int | None = None  # default: the pre-training resize of the preset
    stats_images: int = 10_000  # augmented mode: images the BatchNorm statistics come from
    target_dims: int = TARGET_DIMS
    workers: int = 2
    accelerator: str = "auto"
    seed: int = 0
    progress: bool = True
    cache_dir: str | None = None  # cached mode: where the feature files go (then deleted)
    precision: str | None = None  # the trunk's; None: bf16-mixed where native, else 32-true

    @property
    def mode(self) -> str:
        return MODES[self.cache_features]


@dataclass
class ProbeResult:
    """Accuracies in percent per layer; top5 is empty for 10 classes or fewer."""

    name: str
    grids: dict[str, tuple[int, int]]
    top1: dict[str, float]
    top5: dict[str, float] = field(default_factory=dict)
    train_items: int = 0
    test_items: int = 0
    seconds: dict[str, float] = field(default_factory=dict)


class Moments:
    """Per-dimension mean and variance over a stream of (N, D) batches, in float64 sums, for
    the probe's BatchNorm: exact whatever the order of the data (a running average of batch
    statistics would be biased by class-sorted data)."""

    def __init__(self) -> None:
        self.count = 0
        self.sum: Tensor | None = None
        self.sum_sq: Tensor | None = None

    def add(self, x: Tensor) -> None:
        x = x.double()
        if self.sum is None:
            self.sum, self.sum_sq = x.sum(0), (x * x).sum(0)
        else:
            self.sum += x.sum(0)
            self.sum_sq += (x * x).sum(0)
        self.count += len(x)

    def mean_var(self) -> tuple[Tensor, Tensor]:
        if not self.count:
            raise ValueError("no data to estimate the probe's BatchNorm statistics from")
        mean = self.sum / self.count
        return mean.float(), (self.sum_sq / self.count - mean * mean).clamp_min(0).float()


class ProbeHead(nn.Module):
    """BatchNorm without affine parameters, statistics frozen (buffers), then a linear layer.

    The linear layer starts at zero: the problem is convex, so the start does not matter, and
    zero draws no random numbers.
    """

    def __init__(self, dims: int, classes: int, eps: float = 1e-5) -> None:
        super().__init__()
        self.eps = eps
        self.register_buffer("mean", torch.zeros(dims))
        self.register_buffer("inv_std", torch.ones(dims))
        self.linear = nn.Linear(dims, classes)
        nn.init.zeros_(self.linear.weight)
        nn.init.zeros_(self.linear.bias)

    def set_statistics(self, mean: Tensor, var: Tensor) -> None:
        self.mean.copy_(mean)
        self.inv_std.copy_((var + self.eps).rsqrt())

    def forward(self, x: Tensor) -> Tensor:
        """W((x - mean) / std) + b, with the normalisation folded into the weights: the same
        function and gradients, without normalising a (batch, 9,000) copy (several times
        faster on a CPU)."""
        weight = self.linear.weight * self.inv_std
        return F.linear(x.float(), weight, self.linear.bias - weight @ self.mean)


class _Counts:
    """Correct top-1 / top-5 predictions per layer."""

    def __init__(self, topk: bool) -> None:
        self.ks = (1, 5) if topk else (1,)
        self.correct: dict[str, dict[int, int]] = {}
        self.total = 0

    def add(self, name: str, logits: Tensor, labels: Tensor) -> None:
        hits = topk_correct(logits, labels, self.ks)
        counts = self.correct.setdefault(name, dict.fromkeys(self.ks, 0))
        for k, n in hits.items():
            counts[k] += n

    def percent(self, k: int) -> dict[str, float]:
        return {n: 100.0 * c[k] / self.total for n, c in self.correct.items() if k in c}


class _ProbeTask(L.LightningModule):
    """Augmented mode: one trunk pass per batch, every layer's head trained on it."""

    def __init__(
        self, trunk: FrozenTrunk, heads: nn.ModuleDict, config: ProbeConfig, total_steps: int
    ) -> None:
        super().__init__()
        self.trunk = trunk
        self.heads = heads
        self.config = config
        self.total_steps = total_steps

    def training_step(self, batch: tuple[Tensor, Tensor], batch_idx: int):
        images, labels = batch
        if images.shape[0] == 0:  # every item of the batch proved unreadable
            return None
        features = self.trunk(images)
        loss = sum(F.cross_entropy(self.heads[n](x), labels) for n, x in features.items())
        self.log("loss", loss / len(features), prog_bar=True)
        return loss

    def configure_optimizers(self):
        optimiser, schedule = sgd_with_steps(self.heads.parameters(), self.config, self.total_steps)
        return {"optimizer": optimiser, "lr_scheduler": {"scheduler": schedule, "interval": "step"}}


def _bar(iterable, total: int, desc: str, enabled: bool):
    return track(iterable, total=total, desc=desc, unit="batch", enabled=enabled)


@torch.no_grad()
def _estimate_statistics(
    trunk: FrozenTrunk, heads: nn.ModuleDict, batches, limit: int, device: torch.device, bar: bool
) -> None:
    moments = {name: Moments() for name in heads}
    for images, _ in _bar(batches, len(batches), "probe statistics", bar):
        for name, x in trunk(images.to(device)).items():
            moments[name].add(x)
        if moments[next(iter(moments))].count >= limit:
            break
    for name, m in moments.items():
        heads[name].set_statistics(*m.mean_var())


@torch.no_grad()
def _evaluate(trunk: FrozenTrunk, heads: nn.ModuleDict, batches, counts: _Counts, device, bar):
    heads.eval()
    for images, labels in _bar(batches, len(batches), "probe test", bar):
        labels = labels.to(device)
        for name, x in trunk(images.to(device)).items():
            counts.add(name, heads[name](x), labels)
        counts.total += len(labels)


def _probe_augmented(
    trunk: FrozenTrunk,
    heads: nn.ModuleDict,
    data: LabelledData,
    config: ProbeConfig,
    resize: int,
    crop: int,
    counts: _Counts,
    seconds: dict[str, float],
) -> int:
    device = device_for(config.accelerator, "accelerator")
    train = data.dataset("train", TrainTransform(resize, crop))
    batches = loader(train, config.batch_size, config.workers, shuffle=True, seed=config.seed)
    trunk.to(device)
    heads.to(device)
    start = time.perf_counter()
    _estimate_statistics(trunk, heads, batches, config.stats_images, device, config.progress)
    seconds["statistics"] = time.perf_counter() - start

    start = time.perf_counter()
    total_steps = config.epochs * len(batches)
    task = _ProbeTask(trunk, heads, config, total_steps)
    fit_on_one_device(task, batches, device, config.epochs, "32-true", config.progress)
    seconds["train"] = time.perf_counter() - start

    start = time.perf_counter()
    test = data.dataset("test", EvalTransform(resize, crop))
    test_batches = loader(test, config.batch_size, config.workers)
    trunk.to(device)  # Lightning hands the module back on the CPU
    heads.to(device)
    _evaluate(trunk, heads, test_batches, counts, device, config.progress)
    seconds["test"] = time.perf_counter() - start
    return len(train)


class _FeatureCache:
    """One raw float16 file per layer for one split, appended batch by batch. Plain writes
    (not a memory map) leave the pages to the kernel's cache, outside the process's memory."""

    def __init__(self, directory: Path, split: str, dims: dict[str, int]) -> None:
        self.paths = {name: directory / f"{split}-{name}.f16" for name in dims}
        self.dims = dims
        self.labels: list[Tensor] = []
        self.count = 0

    @torch.no_grad()
    def fill(self, trunk: FrozenTrunk, batches, device, moments: dict[str, Moments] | None, bar):
        with ExitStack() as stack:
            files = {n: stack.enter_context(open(p, "wb")) for n, p in self.paths.items()}
            for images, labels in _bar(batches, len(batches), "caching features", bar):
                if images.shape[0] == 0:
                    continue
                for name, x in trunk(images.to(device)).items():
                    half = x.to(torch.float16)
                    if not torch.isfinite(half).all():
                        raise ValueError(
                            f"{name} features exceed the float16 range of the feature cache; "
                            "run the probe without --cache-features"
                        )
                    half.cpu().numpy().tofile(files[name])
                    if moments is not None:
                        moments[name].add(x)
                self.labels.append(labels)
                self.count += len(labels)

    def nbytes(self) -> int:
        return sum(path.stat().st_size for path in self.paths.values())

    def normalised(self, name: str, head: ProbeHead, chunk: int = 4096) -> Tensor:
        """The layer's features through the head's frozen BatchNorm, in memory as bfloat16
        (count, dims): half of float32's memory, and the format of the fast matrix product."""
        dims = self.dims[name]
        out = torch.empty((self.count, dims), dtype=torch.bfloat16)
        mean, inv_std = head.mean.cpu(), head.inv_std.cpu()
        with open(self.paths[name], "rb") as f:
            for start in range(0, self.count, chunk):
                rows = min(chunk, self.count - start)
                x = np.fromfile(f, dtype=np.float16, count=rows * dims).reshape(rows, dims)
                out[start : start + rows] = (
                    (torch.from_numpy(x).float() - mean) * inv_std
                ).bfloat16()
        return out

    def all_labels(self) -> Tensor:
        return torch.cat(self.labels) if self.labels else torch.zeros(0, dtype=torch.int64)


@contextmanager
def _one_thread():
    """Run small operations on one CPU thread. A head's step is a handful of sub-millisecond
    operations, where a thread pool's fork and join cost more than they save, and on a busy
    machine a descheduled helper thread stalls every operation (10x slower steps measured on
    the shared 2-core machine with 2 threads than with 1)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(threads)


def _train_head_cached(
    head: ProbeHead, x: Tensor, y: Tensor, config: ProbeConfig, device: torch.device
) -> None:
    """SGD on the head's linear layer over normalised bfloat16 features ``x``; the products
    run in bfloat16 where that is native (weights and updates stay float32, as in mixed
    precision training), several times faster than float32 for these skinny
    (256 x 9,000) x (9,000 x classes) products on a CPU."""
    steps = config.epochs * -(-len(x) // config.batch_size)
    optimiser, schedule = sgd_with_steps(head.linear.parameters(), config, steps)
    fast = native_bf16(device)
    order = torch.Generator().manual_seed(config.seed)  # the same batches for every layer
    with _one_thread():
        for _ in range(config.epochs):
            for idx in torch.randperm(len(x), generator=order).split(config.batch_size):
                batch = x.index_select(0, idx).to(device)  # 10x faster than x[idx] here
                with torch.autocast(device.type, dtype=torch.bfloat16, enabled=fast):
                    logits = head.linear(batch if fast else batch.float())
                loss = F.cross_entropy(logits.float(), y[idx].to(device))
                optimiser.zero_grad(set_to_none=True)
                loss.backward()
                optimiser.step()
                schedule.step()


def _probe_cached(
    trunk: FrozenTrunk,
    heads: nn.ModuleDict,
    data: LabelledData,
    config: ProbeConfig,
    resize: int,
    crop: int,
    counts: _Counts,
    seconds: dict[str, float],
) -> int:
    device = device_for(config.accelerator, "accelerator")
    trunk.to(device)
    heads.to(device)
    dims = {name: head.linear.in_features for name, head in heads.items()}
    parent = config.cache_dir
    if parent:
        Path(parent).mkdir(parents=True, exist_ok=True)
    directory = Path(tempfile.mkdtemp(prefix="splitbrain-probe-cache-", dir=parent))
    try:
        start = time.perf_counter()
        transform = EvalTransform(resize, crop)
        caches, moments = {}, {name: Moments() for name in heads}
        for split in ("train", "test"):
            dataset = data.dataset(split, transform)
            caches[split] = _FeatureCache(directory, split, dims)
            batches = loader(dataset, config.batch_size, config.workers)
            caches[split].fill(
                trunk, batches, device, moments if split == "train" else None, config.progress
            )
        seconds["features"] = time.perf_counter() - start
        size = sum(c.nbytes() for c in caches.values())
        log.info("feature cache: %.2f GiB of float16 in %s", size / 2**30, directory)

        start = time.perf_counter()
        train_labels, test_labels = caches["train"].all_labels(), caches["test"].all_labels()
        for name, head in heads.items():
            head.set_statistics(*moments[name].mean_var())
            train = caches["train"].normalised(name, head)
            _train_head_cached(head, train, train_labels, config, device)
            del train
            with torch.no_grad():
                x = caches["test"].normalised(name, head)
                for chunk, labels in zip(x.split(4096), test_labels.split(4096), strict=True):
                    counts.add(name, head.linear(chunk.to(device).float()), labels.to(device))
        counts.total = len(test_labels)
        seconds["heads"] = time.perf_counter() - start
        return caches["train"].count
    finally:
        shutil.rmtree(directory, ignore_errors=True)


def linear_probe(
    model: SplitBrain, data: LabelledData, config: ProbeConfig | None = None, name: str = "model"
) -> ProbeResult:
    """Train linear probes on ``model``'s frozen layers with ``data``'s training images and
    score them on its test images. The model's weights and BatchNorm statistics are left
    exactly as they were (it is put in eval mode and NHWC memory format)."""
    config = config or ProbeConfig()
    L.seed_everything(config.seed, verbose=False)
    layers = check_layers(model, list(config.layers) if config.layers else None, name)
    resize, crop = model.geometry(config.crop, config.resize)
    grids = probe_grids(model, crop, layers, config.target_dims)
    log.info("%s: probe grids at %d px: %s", name, crop, describe_grids(grids))
    precision, _ = resolve_precision(
        config.precision, device_for(config.accelerator, "accelerator")
    )
    trunk = FrozenTrunk(model, grids, precision)
    heads = nn.ModuleDict(
        {n: ProbeHead(g * g * c, data.num_classes) for n, (g, c) in grids.items()}
    )
    counts = _Counts(topk=data.num_classes > 10)
    seconds: dict[str, float] = {}
    start = time.perf_counter()
    run = _probe_cached if config.cache_features else _probe_augmented
    train_items = run(trunk, heads, data, config, resize, crop, counts, seconds)
    seconds["total"] = time.perf_counter() - start
    return ProbeResult(
        name=name,
        grids=grids,
        top1=counts.percent(1),
        top5=counts.percent(5) if data.num_classes > 10 else {},
        train_items=train_items,
        test_items=counts.total,
        seconds=seconds,
    )
