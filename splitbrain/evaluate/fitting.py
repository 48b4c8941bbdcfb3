"""What the probe and fine-tuning share to fit on one device: the SGD recipe with the paper's
step decay, and a quiet single-device Lightning fit."""

from __future__ import annotations

import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Protocol

import lightning as L
import torch

#: The paper's schedule: lr x0.1 after 40k, 80k and 120k of 140k iterations.
LR_MILESTONES = (40 / 140, 80 / 140, 120 / 140)
#: Warnings a fit raises that are not the user's business: frozen modules in eval mode are
#: the point of a probe; the pytree deprecation is between Lightning and torch; a resumed
#: pre-training's loader is rebuilt at the checkpoint's step (``train/stream.py``), which
#: Lightning cannot see and calls "not resumable" (pretrain logs its own line instead).
LIGHTNING_NOISE = (
    r"Found \d+ module\(s\) in eval mode",
    r".*isinstance\(treespec, LeafSpec\)",
    r"You're resuming from a checkpoint that ended before the epoch ended",
)


@contextmanager
def quiet_lightning() -> Iterator[None]:
    """Lightning calls inside this block raise none of ``LIGHTNING_NOISE``; the warning
    filters are restored afterwards (nothing global is changed)."""
    with warnings.catch_warnings():
        for message in LIGHTNING_NOISE:
            warnings.filterwarnings("ignore", message=message)
        yield


class SGDSettings(Protocol):
    """What the probe's and fine-tuning's optimiser reads from their configurations."""

    lr: float
    momentum: float
    weight_decay: float
    lr_milestones: tuple[float, ...]
    lr_gamma: float


def sgd_with_steps(
    params, config: SGDSettings, total_steps: int
) -> tuple[torch.optim.Optimizer, torch.optim.lr_scheduler.LRScheduler]:
    """SGD with momentum and weight decay; lr x``lr_gamma`` at each milestone (per step)."""
    optimiser = torch.optim.SGD(
        params, lr=config.lr, momentum=config.momentum, weight_decay=config.weight_decay
    )
    milestones = [round(m * total_steps) for m in config.lr_milestones]
    schedule = torch.optim.lr_scheduler.LambdaLR(
        optimiser, lambda step: config.lr_gamma ** sum(step >= m for m in milestones)
    )
    return optimiser, schedule


def fit_on_one_device(
    task: L.LightningModule,
    batches,
    device: torch.device,
    epochs: int,
    precision: str,
    progress: bool,
) -> None:
    """Fit ``task`` on ``batches`` with a Lightning trainer on one device: no logger,
    checkpoints or validation, batches from our own loaders. Lightning hands the module back
    on the CPU."""
    trainer = L.Trainer(
        accelerator="gpu" if device.type == "cuda" else "cpu",
        devices=1,
        precision=precision,
        max_epochs=epochs,
        logger=False,
        enable_checkpointing=False,
        enable_model_summary=False,
        enable_progress_bar=progress,
        num_sanity_val_steps=0,
        limit_val_batches=0,
        use_distributed_sampler=False,
    )
    with quiet_lightning():
        trainer.fit(task, train_dataloaders=batches)
