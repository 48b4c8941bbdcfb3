"""Pre-training on Lightning: one code path from a laptop CPU to many GPUs on many nodes.

``pretrain(config)`` locks the run directory, opens the data, checks it, builds the variant, and
fits it with a Lightning ``Trainer``: DDP across devices and nodes (torchrun and SLURM are
detected by Lightning), bf16 mixed precision on GPUs, atomic checkpoints every N steps and at a
stop signal, automatic resumption from the run directory, TensorBoard logs and progress (a bar
on a terminal, plain lines in a log file). Batches arrive as uint8; float conversion, Lab
conversion and target encoding run on the training device inside the step.
"""

from __future__ import annotations

import contextlib
import logging
import math
import os
from pathlib import Path

import lightning as L
import torch
from lightning.pytorch.callbacks import LearningRateMonitor, ThroughputMonitor
from torch import Tensor
from torch.utils.data import Dataset

from ..atomic import atomic_write
from ..colorize import colorizer, save_colorization_grid
from ..data import EvalTransform, ImageDataset
from ..errors import SettingError
from ..init import CALIBRATION_BATCHES, calibrate_batchnorm, kraehenbuehl_init_
from ..losses import rebalancing_weights
from ..models import SplitBrain
from ..objective import Objective, target_histograms
from ..progress import SUMMARY
from ..runs.checkpoints import (
    AtomicCheckpointIO,
    RollingCheckpoints,
    checkpoint_step,
    resumable_checkpoint,
)
from ..runs.checkpoints import checkpoints as checkpoint_files  # ``checkpoints`` names a callback
from ..runs.fitting import progress_callbacks, quiet_lightning
from ..runs.folder import TensorBoardLog, run_folder_faults
from ..runs.lock import RunLock, first_process
from ..runs.recipe import check_length, check_recipe
from ..runs.signals import StopOnSignal
from ..runs.stream import StreamLoader, make_loader
from ..variants import UNTRAINED, build
from ..weights import load, save
from .callbacks import KNNProbeCallback
from .config import RECIPE_KEYS, UNCOMPARED, TrainConfig
from .data import open_training_data
from .task import PretrainTask

log = logging.getLogger("splitbrain.train")

INIT_IMAGES = 64  # the Krähenbühl initialisation's batch: the first samples of the stream
PRIOR_IMAGES, PRIOR_BATCH = 2048, 64  # samples the class-rebalancing prior is counted over


def _kraehenbuehl(model: SplitBrain, dataset: Dataset, config: TrainConfig) -> None:
    """Data-dependent initialisation from the run's first samples."""
    images, _ = next(iter(make_loader(dataset, INIT_IMAGES, 1, config.seed)))
    raw, _ = model.split.space.decode_batch(images)
    diagnostics = kraehenbuehl_init_(model, raw, seed=config.seed)
    log.info(
        "Krähenbühl initialisation from %d samples in %.1f s", len(raw), diagnostics["seconds"]
    )


def _rebalancing(model: SplitBrain, dataset: Dataset, config: TrainConfig) -> dict[str, Tensor]:
    """ECCV16 class-rebalancing weights of every classification target, from the empirical
    prior of its bins over the run's first samples (the same on resume: the stream is a
    function of the seed, whatever the batch size), mixed ``config.rebalance`` with uniform."""
    steps = math.ceil(PRIOR_IMAGES / PRIOR_BATCH)
    batches = make_loader(dataset, PRIOR_BATCH, steps, config.seed, workers=config.workers)
    counts: dict[str, Tensor] = {}
    for images, _ in batches:
        if len(images) == 0:  # every item of the batch proved unreadable
            continue
        raw, valid = model.split.space.decode_batch(images)
        for name, histogram in target_histograms(model, raw, valid).items():
            counts[name] = counts.get(name, 0) + histogram
    if not counts:
        raise SettingError(
            "rebalance", f"variant {config.variant} on split {config.split} has no "
            "classification target to rebalance",
        )  # fmt: skip
    weights = {name: rebalancing_weights(c, config.rebalance) for name, c in counts.items()}
    for name, w in weights.items():
        log.info("rebalancing %s: weights %.2f to %.2f", name, w.min(), w.max())
    return weights


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


def _init_from(model: SplitBrain, path: str) -> None:
    """Start from a weights file: every tensor whose name and shape match (the towers must;
    prediction heads of another variant or split may not, and keep their initialisation)."""
    source = load(path)
    ours, theirs = model.state_dict(), source.state_dict()
    taken = {k: v for k, v in theirs.items() if k in ours and ours[k].shape == v.shape}
    towers = [k for k in ours if ".tower." in k]
    unmatched = [k for k in towers if k not in taken]
    if unmatched:
        raise SettingError(
            "init_from", f"a {source.config.variant} network at preset {source.config.preset} "
            f"whose towers do not match this run's (first: {unmatched[0]})", path,
        )  # fmt: skip
    model.load_state_dict(taken, strict=False)
    left = sorted(k for k in ours if k not in taken)
    detail = f"; kept their initialisation: {', '.join(left)}" if left else " (all of them)"
    log.info("initialised from %s: %d tensors%s", path, len(taken), detail)


def _save_untrained(model: SplitBrain, dataset: Dataset, config: TrainConfig, path: Path) -> Path:
    """An untrained baseline (``gaussian``): the initial weights, with BatchNorm statistics
    measured on the run's first batches."""
    batches = make_loader(
        dataset, config.batch_size, CALIBRATION_BATCHES, config.seed, config.workers
    )
    calibrate_batchnorm(model, batches, CALIBRATION_BATCHES)
    save(model, path, config.provenance(0))
    log.info(
        "%s: untrained, BatchNorm statistics from %d batches", config.variant, CALIBRATION_BATCHES
    )
    log.info("weights: %s", path)
    return path


def _batch_size(batch: tuple[Tensor, Tensor]) -> int:
    return batch[0].shape[0]


def _trainer(
    config: TrainConfig, total_steps: int, callbacks: list, strategy: str | None
) -> L.Trainer:
    out = Path(config.out)
    if config.probe_every:
        probe = KNNProbeCallback.from_spec(
            config.probe_every, config.probe_data, crop=config.crop, resize=config.resize
        )
        callbacks = [*callbacks, probe]
    return L.Trainer(
        accelerator=config.accelerator,
        devices=config.devices,
        num_nodes=config.nodes,
        strategy=strategy or "auto",
        precision=config.precision,
        sync_batchnorm=config.sync_batchnorm,
        max_steps=total_steps,
        max_epochs=-1,
        logger=TensorBoardLog(out),
        log_every_n_steps=min(config.log_every, total_steps),
        callbacks=[
            *callbacks,
            LearningRateMonitor(logging_interval="step"),
            ThroughputMonitor(batch_size_fn=_batch_size, window_size=max(2, config.log_every)),
            *progress_callbacks(config.progress, steps=True),
        ],
        plugins=[AtomicCheckpointIO()],
        enable_checkpointing=False,  # RollingCheckpoints writes them, not Lightning's default
        enable_progress_bar=config.progress,
        enable_model_summary=False,
        num_sanity_val_steps=0,
        limit_val_batches=0,
        use_distributed_sampler=False,
        deterministic=False,
    )


def _where(trainer: L.Trainer, config: TrainConfig) -> str:
    """One line for what Lightning would say in five: devices, nodes, precision."""
    device = trainer.strategy.root_device
    count = trainer.num_devices * trainer.num_nodes
    kind = torch.cuda.get_device_name(device) if device.type == "cuda" else "CPU"
    threads = f", {torch.get_num_threads()} threads" if device.type == "cpu" else ""
    nodes = f" on {trainer.num_nodes} nodes" if trainer.num_nodes > 1 else ""
    plural = "s" if count > 1 else ""
    return (
        f"training on {count} {kind} device{plural}{nodes}{threads}, precision "
        f"{config.precision} ({config.precision_reason})"
    )


def pretrain(
    config: TrainConfig, callbacks: list | None = None, strategy: str | None = None
) -> Path:
    """Run (or resume) a pre-training and export its weights; returns the weights path.

    The run directory is locked while it runs (``RunLockedError`` when another live process
    holds it). Called from the main thread, SIGTERM, SIGINT or SIGUSR1 end the run with
    ``Interrupted`` after writing the checkpoint of the step reached; running it again resumes
    from there (from another thread, signals keep the handlers they have). A file of the run
    folder that cannot be written ends it with ``RunFolderError``, one line saying what to do.
    """
    out = Path(config.out)
    if config.sync_batchnorm and (config.accelerator == "cpu" or not torch.cuda.is_available()):
        raise SettingError("sync_batchnorm", "needs GPUs: torch's SyncBatchNorm has no CPU version")
    if config.requeue and "SLURM_JOB_ID" not in os.environ:
        raise SettingError("requeue", "is for SLURM jobs, and SLURM_JOB_ID is not set")
    # The job's first process holds the folder; the other ranks (launched by torchrun or
    # SLURM) share it and write nothing in it before training, where rank 0 alone writes.
    first = first_process()
    lock = RunLock(out) if first else None
    checkpoints = RollingCheckpoints(
        out / "checkpoints", config.checkpoint_every, config.keep_checkpoints
    )
    with (
        run_folder_faults(out),
        lock or contextlib.nullcontext(),
        StopOnSignal(checkpoints, lock) as stop,
    ):
        return _pretrain(config, [checkpoints, stop, *(callbacks or [])], strategy, stop, first)


def _pretrain(
    config: TrainConfig, callbacks: list, strategy: str | None, stop: StopOnSignal, first: bool
) -> Path:
    out = Path(config.out)
    L.seed_everything(config.seed, workers=True, verbose=False)
    started = bool(checkpoint_files(out / "checkpoints")) or (out / "weights.safetensors").exists()
    check_recipe(out, config.to_dict(), started, RECIPE_KEYS, UNCOMPARED)
    dataset, report = open_training_data(config)
    total_steps = config.total_steps(len(dataset))
    resume = resumable_checkpoint(out / "checkpoints", tidy=first)
    done = checkpoint_step(resume) if resume else 0
    check_length(out, total_steps, done)
    bad = getattr(dataset, "log", None)  # images and channel stacks keep one
    if first:
        settings = config.to_yaml(total_steps)
        atomic_write(out / "config.yaml", lambda tmp: Path(tmp).write_text(settings))
        if bad is not None and (listing := bad.write_listing(dataset.source, out / "skipped.txt")):
            log.info("skipped items, each with its reason: %s", listing)

    model = build(config.variant, config.preset, config.split, config.width, config.bn_affine)
    if config.init_from:
        _init_from(model, config.init_from)
    elif config.init == "kraehenbuehl":
        _kraehenbuehl(model, dataset, config)
    weights_path = out / "weights.safetensors"
    if config.variant in UNTRAINED:
        return _save_untrained(model, dataset, config, weights_path)

    rebalance = _rebalancing(model, dataset, config) if config.rebalance else {}
    objective = Objective(soft=config.soft_targets, rebalance=rebalance)
    task = PretrainTask(model, config, total_steps, objective)
    trainer = _trainer(config, total_steps, callbacks, strategy)
    log.info("%s", _where(trainer, config))
    if resume:
        log.info(
            "resuming from %s (step %d of %d): samples and augmentations are a function of the "
            "seed and the step, so it goes on exactly as if it had never stopped",
            resume, done, total_steps,
        )  # fmt: skip
    else:
        log.info("%s: %d steps of %d images", out, total_steps, config.batch_size)
    loader = StreamLoader(dataset, config.batch_size, total_steps, config.seed, config.workers)
    with quiet_lightning():
        trainer.fit(task, datamodule=loader, ckpt_path=resume)
    if stop.step is not None:
        raise stop.interrupted(total_steps, config.requeue and trainer.is_global_zero)
    if stop.signal is not None:
        log.info("%s came during the last step: the run ends with it", stop.signal.name)
    if trainer.is_global_zero:
        save(model.eval(), weights_path, config.provenance(total_steps))
        log.info("%s", report())
        picture = _write_colorizations(model, dataset, config, out)
        if picture:
            log.info("colorizations: %s", picture, extra=SUMMARY)
        log.info("weights: %s", weights_path, extra=SUMMARY)
        log.info("logs: %s (tensorboard --logdir %s)", out / "tensorboard", out, extra=SUMMARY)
        log.info("checkpoints: %s", out / "checkpoints", extra=SUMMARY)
    return weights_path
