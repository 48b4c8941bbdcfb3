"""Pre-training on Lightning: one code path from a laptop CPU to many GPUs on many nodes.

``pretrain(config)`` opens the data, checks it, builds the variant, and fits it with a Lightning
``Trainer``: DDP across devices and nodes (torchrun and SLURM are detected by Lightning), bf16
mixed precision on GPUs, atomic checkpoints every N steps, automatic resumption from the run
directory, TensorBoard logs and a progress bar. Batches arrive as uint8; float conversion, Lab
conversion and target encoding run on the training device inside the step.
"""

from __future__ import annotations

import dataclasses
import logging
import math
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import lightning as L
import torch
import yaml
from lightning.fabric.utilities.cloud_io import get_filesystem
from lightning.pytorch.callbacks import LearningRateMonitor, ModelCheckpoint, ThroughputMonitor
from lightning.pytorch.loggers import TensorBoardLogger
from lightning.pytorch.plugins.io import TorchCheckpointIO
from torch.utils.data import DataLoader, Dataset

from .atomic import atomic_write
from .colorize import colorizer, save_colorization_grid
from .data import (
    EvalTransform,
    ImageDataset,
    TrainTransform,
    open_source,
    scan_source,
)
from .models import PRESET_INPUT, SplitBrain, training_flops_per_image
from .objective import Objective
from .splits import get_split
from .stream import SeededDataset, StepSampler, sample_seed
from .variants import UNTRAINED, build
from .weights import save

log = logging.getLogger("splitbrain.train")
# Lightning's advertisement and third-party deprecation chatter are not the user's business.
logging.getLogger("lightning.pytorch.utilities.rank_zero").addFilter(
    lambda record: not str(record.msg).startswith("💡")
)
warnings.filterwarnings("ignore", message=r".*isinstance\(treespec, LeafSpec\)")

# The ECCV16 AlexNet recipe (SPEC section 4): lr steps at 240k, 300k, 400k of 450k iterations.
LR_MILESTONES = (240 / 450, 300 / 450, 400 / 450)
LR_FACTORS = (1.0, 1 / 3, 1 / 10, 1 / 30)  # 3e-5 -> 1e-5 -> 3e-6 -> 1e-6
DEFAULT_LR = {"paper": 3e-5, "transfer": 3e-5, "small": 1e-3}
# The paper resizes to 256 and crops 180; other presets keep that ratio, except that small
# images (CIFAR) are padded by the usual 4 pixels' worth of resize instead of upscaled 1.4x.
DEFAULT_RESIZE = {"paper": 256, "transfer": 256, "small": 36}
# One kernel for the whole Adam update (CPU support since torch 2.4).
FUSED_ADAM = tuple(int(v) for v in torch.__version__.split(".")[:2]) >= (2, 4)
MODEL_KEYS = ("variant", "preset", "split", "width", "bn_affine", "init")


@dataclass
class TrainConfig:
    """Everything a pre-training run depends on; saved as config.yaml in the run directory."""

    data: str = "skimage:"
    out: str = "runs/splitbrain"
    variant: str = "splitbrain"
    preset: str = "paper"
    split: str = "lab"
    width: float = 1.0
    bn_affine: bool = False
    init: str = "gaussian"
    epochs: float | None = None
    steps: int | None = None
    batch_size: int = 80
    lr: float | None = None
    weight_decay: float = 1e-3
    betas: tuple[float, float] = (0.9, 0.999)
    lr_milestones: tuple[float, ...] = LR_MILESTONES
    lr_factors: tuple[float, ...] = LR_FACTORS
    soft_targets: bool = False
    rebalance: float | None = None
    crop: int | None = None
    resize: int | None = None
    accelerator: str = "auto"
    devices: int | str = "auto"
    nodes: int = 1
    precision: str | None = None
    sync_batchnorm: bool = False
    workers: int = 2
    seed: int = 0
    checkpoint_every: int = 500
    probe_every: int | None = None
    probe_data: str | None = None
    log_every: int = 10
    max_bad_fraction: float = 0.01
    download: bool = False
    progress: bool = True
    extra: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.crop = self.crop or PRESET_INPUT[self.preset]
        self.resize = self.resize or max(self.crop, DEFAULT_RESIZE[self.preset])
        self.lr = self.lr or DEFAULT_LR[self.preset]
        if len(self.lr_factors) != len(self.lr_milestones) + 1:
            raise ValueError("need one more learning-rate factor than milestones")

    def to_yaml(self) -> str:
        data = dataclasses.asdict(self)
        data["betas"], data["lr_milestones"] = list(self.betas), list(self.lr_milestones)
        data["lr_factors"] = list(self.lr_factors)
        return yaml.safe_dump(data, sort_keys=False)


class AtomicCheckpointIO(TorchCheckpointIO):
    """Checkpoints are written to a temporary file and renamed: never half a file."""

    def save_checkpoint(self, checkpoint: dict, path, storage_options=None) -> None:
        atomic_write(path, lambda tmp: torch.save(checkpoint, tmp))

    def remove_checkpoint(self, path) -> None:
        fs = get_filesystem(path)
        if fs.exists(path):
            fs.rm(path, recursive=True)


class PretrainTask(L.LightningModule):
    """The Lightning wrapper of a model and its objective; the model stays a plain module."""

    def __init__(
        self, model: SplitBrain, config: TrainConfig, total_steps: int, objective: Objective
    ) -> None:
        super().__init__()
        # NHWC is what oneDNN and cuDNN convolutions are fastest on (1.5x here on CPU).
        self.model = model.to(memory_format=torch.channels_last)
        self.config = config
        self.total_steps = total_steps
        self.objective = objective

    def on_fit_start(self) -> None:
        """Model FLOPs per device batch, for the throughput monitor's FLOP/s."""
        per_image = training_flops_per_image(self.model.config, self.config.crop)
        self.flops_per_batch = per_image * self.config.batch_size // self.trainer.world_size

    def training_step(self, batch: tuple[torch.Tensor, torch.Tensor], batch_idx: int):
        images, _ = batch
        if images.shape[0] == 0:  # every item of the batch proved unreadable: skip the step
            return None
        raw, valid = self.model.split.space.decode_batch(images)
        raw = raw.contiguous(memory_format=torch.channels_last)
        # Randomness inside the step (input dropout) is a function of seed and step, so a
        # resumed run draws what the uninterrupted run would have drawn.
        with torch.random.fork_rng(devices=[raw.device] if raw.is_cuda else []):
            torch.manual_seed(sample_seed(self.config.seed + 1, self.global_step))
            loss, logs = self.objective(self.model, raw, valid)
        self.log("loss", loss, prog_bar=True, sync_dist=False)
        self.log_dict({f"train/{k}": v for k, v in logs.items() if k != "loss"})
        return loss

    def configure_optimizers(self):
        c = self.config
        optimiser = torch.optim.Adam(
            self.model.parameters(),
            lr=c.lr,
            betas=c.betas,
            weight_decay=c.weight_decay,
            fused=FUSED_ADAM,
        )
        milestones = [round(m * self.total_steps) for m in c.lr_milestones]

        def factor(step: int) -> float:
            return c.lr_factors[sum(step >= m for m in milestones)]

        schedule = torch.optim.lr_scheduler.LambdaLR(optimiser, factor)
        return {"optimizer": optimiser, "lr_scheduler": {"scheduler": schedule, "interval": "step"}}


def make_loader(
    dataset: ImageDataset,
    config: TrainConfig,
    total_steps: int,
    rank: int = 0,
    world_size: int = 1,
    start_step: int = 0,
    pin_memory: bool = False,
) -> DataLoader:
    """The loader of this rank's share of steps ``start_step``..``total_steps``-1."""
    sampler = StepSampler(
        len(dataset), config.batch_size, total_steps, config.seed, rank, world_size, start_step
    )
    return DataLoader(
        SeededDataset(dataset),
        batch_size=sampler.local_batch,
        sampler=sampler,
        num_workers=config.workers,
        collate_fn=getattr(dataset, "collate", None),
        pin_memory=pin_memory,
        prefetch_factor=4 if config.workers else None,
    )


class _StreamLoader(L.LightningDataModule):
    """Builds the loader after a checkpoint is restored, so the stream starts at its step."""

    def __init__(self, dataset: Dataset, config: TrainConfig, total_steps: int) -> None:
        super().__init__()
        self.dataset = dataset
        self.config = config
        self.total_steps = total_steps

    def train_dataloader(self) -> DataLoader:
        trainer = self.trainer
        return make_loader(
            self.dataset,
            self.config,
            self.total_steps,
            trainer.global_rank,
            trainer.world_size,
            trainer.global_step,
            pin_memory=trainer.accelerator.__class__.__name__ == "CUDAAccelerator",
        )


def _batch_size(batch: tuple[torch.Tensor, torch.Tensor]) -> int:
    return batch[0].shape[0]


def _check_same_run(out: Path, config: TrainConfig) -> None:
    """Refuse to resume a run directory that holds a different model."""
    saved = out / "config.yaml"
    if not saved.exists():
        return
    previous = yaml.safe_load(saved.read_text())
    different = [k for k in MODEL_KEYS if previous.get(k) != getattr(config, k)]
    if different:
        raise ValueError(
            f"{out} holds a run with a different {', '.join(different)}; "
            "choose another --out or delete it"
        )


def total_steps_for(config: TrainConfig, num_items: int) -> int:
    if config.steps:
        return config.steps
    epochs = config.epochs if config.epochs is not None else 1.0
    return max(1, math.ceil(epochs * num_items / config.batch_size))


def calibrate_batchnorm(model: SplitBrain, loader: DataLoader, batches: int = 10) -> None:
    """Set BatchNorm running statistics from data, without any weight update, for untrained
    baselines: with the initial statistics (0, 1) deep layers of a random net explode or
    vanish in eval mode."""
    for m in model.modules():
        if isinstance(m, torch.nn.BatchNorm2d):
            m.reset_running_stats()
            m.momentum = None  # cumulative average
    model.train()
    with torch.no_grad():
        for i, (images, _) in enumerate(loader):
            if i == batches:
                break
            model(*model.split.space.decode_batch(images))


def open_training_data(config: TrainConfig) -> tuple[Dataset, Callable[[], str]]:
    """The training dataset for the split's kind of data, and a report of what was skipped.

    Datasets hand uint8 (C, crop, crop) items to the loader, and a ``collate`` to batch them.
    """
    space = get_split(config.split).space
    if space.kind == "identity":
        from .data.channels import ChannelDataset, open_channels

        source = open_channels(config.data)
        print(f"data: {source.describe()}")
        dataset = ChannelDataset(
            source, config.resize, config.crop, train=True, num_channels=len(space.names)
        )
        return dataset, dataset.report
    if space.kind == "rgbd":
        from .data.rgbd import open_rgbd
        from .data.rgbd_dataset import RGBDDataset

        source = open_rgbd(config.data)
        print(f"data: {source.describe()}")
        dataset = RGBDDataset(source, config.resize, config.crop, train=True)
        return dataset, dataset.report
    source = open_source(config.data, split="train", download=config.download)
    print(f"data: {source.describe()}")
    bad = scan_source(source, config.max_bad_fraction, config.crop // 2, progress=config.progress)
    transform = TrainTransform(config.resize, config.crop)
    return ImageDataset(source, transform, log=bad, min_side=config.crop // 2), bad.summary


def _write_colorizations(
    model: SplitBrain, dataset: Dataset, config: TrainConfig, out: Path
) -> Path | None:
    """Colorize a few centre crops of the data, if the variant has a colorizing half."""
    if colorizer(model) is None or not isinstance(dataset, ImageDataset):
        return None
    dataset = ImageDataset(dataset.source, EvalTransform(config.resize, config.crop))
    step = max(1, len(dataset) // 8)
    items = [dataset[i] for i in range(0, min(len(dataset), 8 * step), step)]
    images = torch.stack([image for image, _ in filter(None, items)])
    device = next(model.parameters()).device
    return save_colorization_grid(model, images.to(device).float() / 255, out / "colorizations.png")


def _kraehenbuehl(model: SplitBrain, dataset: Dataset, config: TrainConfig) -> None:
    """Data-dependent initialisation from the run's first 64 samples (the same on resume)."""
    from .init import kraehenbuehl_init_

    first = dataclasses.replace(config, batch_size=64, workers=0)
    images, _ = next(iter(make_loader(dataset, first, total_steps=1)))
    raw, _ = model.split.space.decode_batch(images)
    diagnostics = kraehenbuehl_init_(model, raw, seed=config.seed)
    print(f"Krähenbühl initialisation from {len(raw)} samples in {diagnostics['seconds']:.1f} s")


def pretrain(
    config: TrainConfig, callbacks: list | None = None, strategy: str | None = None
) -> Path:
    """Run (or resume) a pre-training and export its weights; returns the weights path."""
    out = Path(config.out)
    if config.sync_batchnorm and (config.accelerator == "cpu" or not torch.cuda.is_available()):
        raise ValueError("--sync-batchnorm needs GPUs: torch's SyncBatchNorm has no CPU version")
    L.seed_everything(config.seed, workers=True, verbose=False)
    _check_same_run(out, config)
    dataset, report = open_training_data(config)
    total_steps = total_steps_for(config, len(dataset))
    out.mkdir(parents=True, exist_ok=True)
    (out / "config.yaml").write_text(config.to_yaml())

    model = build(config.variant, config.preset, config.split, config.width, config.bn_affine)
    if config.init == "kraehenbuehl":
        _kraehenbuehl(model, dataset, config)
    objective = Objective(soft=config.soft_targets)
    weights_path = out / "weights.safetensors"
    if config.variant in UNTRAINED:
        calibrate_batchnorm(model, make_loader(dataset, config, total_steps=10))
        save(model.eval(), weights_path)
        print(f"{config.variant}: untrained, BatchNorm statistics from 10 batches")
        print(f"weights: {weights_path}")
        return weights_path

    task = PretrainTask(model, config, total_steps, objective)
    callbacks = list(callbacks or [])
    if config.probe_every:
        from .evaluate.knn import KNNProbeCallback

        callbacks.append(
            KNNProbeCallback.from_spec(
                config.probe_every, config.probe_data, crop=config.crop, resize=config.resize
            )
        )
    checkpoints = out / "checkpoints"
    trainer = L.Trainer(
        accelerator=config.accelerator,
        devices=config.devices,
        num_nodes=config.nodes,
        strategy=strategy or "auto",
        precision=config.precision or ("bf16-mixed" if torch.cuda.is_available() else "32-true"),
        sync_batchnorm=config.sync_batchnorm,
        max_steps=total_steps,
        max_epochs=-1,
        logger=TensorBoardLogger(out, name="tensorboard", version=""),
        log_every_n_steps=config.log_every,
        callbacks=[
            ModelCheckpoint(
                dirpath=checkpoints,
                every_n_train_steps=config.checkpoint_every,
                save_last=True,
                save_top_k=0,
            ),
            LearningRateMonitor(logging_interval="step"),
            ThroughputMonitor(batch_size_fn=_batch_size, window_size=max(2, config.log_every)),
            *callbacks,
        ],
        plugins=[AtomicCheckpointIO()],
        enable_progress_bar=config.progress,
        enable_model_summary=False,
        num_sanity_val_steps=0,
        limit_val_batches=0,
        use_distributed_sampler=False,
        deterministic=False,
    )
    last = checkpoints / "last.ckpt"
    resume = last if last.exists() else None
    if resume:
        print(f"resuming from {resume}")
    trainer.fit(task, datamodule=_StreamLoader(dataset, config, total_steps), ckpt_path=resume)
    trainer.save_checkpoint(last, weights_only=False)
    if trainer.is_global_zero:
        save(model.eval(), weights_path)
        print(report())
        picture = _write_colorizations(model, dataset, config, out)
        if picture:
            print(f"colorizations: {picture}")
        print(
            f"weights: {weights_path}\nlogs: {out / 'tensorboard'} "
            f"(tensorboard --logdir {out})\ncheckpoints: {checkpoints}"
        )
    return weights_path


__all__ = ["TrainConfig", "pretrain"]
