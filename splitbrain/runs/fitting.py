"""What every Lightning fit shares: warnings that are not the user's business kept quiet,
progress as bars or log lines, and, for the probe, fine-tuning and segmentation, the SGD recipe
with the paper's step decay and a quiet single-device fit."""

from __future__ import annotations

import time
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

import lightning as L
import torch
from lightning.pytorch.callbacks import ProgressBar, TQDMProgressBar

from ..progress import default_interval, duration, progress_log, to_terminal

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


class TrainingLines(ProgressBar):
    """Lightning's progress as plain lines, for output that is not a terminal: every
    ``interval`` seconds and at the end, the step, images per second, the loss and the time
    left."""

    def __init__(self, interval: float | None = None) -> None:
        super().__init__()
        self.interval = default_interval() if interval is None else interval
        self.enabled = True

    def disable(self) -> None:
        self.enabled = False

    def enable(self) -> None:
        self.enabled = True

    def on_train_start(self, trainer, pl_module) -> None:
        self.first_step, self.images = trainer.global_step, 0
        self.start = self.last = time.monotonic()

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        self.images += len(batch[0]) * trainer.world_size
        now = time.monotonic()
        if self.enabled and now - self.last >= self.interval:
            self.write(trainer, pl_module, now)

    def on_train_end(self, trainer, pl_module) -> None:
        if self.enabled:
            self.write(trainer, pl_module, time.monotonic())

    def write(self, trainer, pl_module, now: float) -> None:
        self.last = now
        step, total = trainer.global_step, _total_steps(trainer)
        steps_per_second = (step - self.first_step) / max(now - self.start, 1e-9)
        left = duration((total - step) / steps_per_second) if steps_per_second else "?"
        loss = self.get_metrics(trainer, pl_module).get("loss")
        loss = f", loss {loss:.3f}" if isinstance(loss, float) else ""
        progress_log.info(
            "step %d/%d (%.0f%%), %.1f images/s%s, %s left",
            step, total, 100 * step / total, self.images / max(now - self.start, 1e-9), loss,
            left,
        )  # fmt: skip


def _total_steps(trainer: L.Trainer) -> int:
    return trainer.max_steps if trainer.max_steps > 0 else int(trainer.estimated_stepping_batches)


class StepsBar(TQDMProgressBar):
    """Lightning's bar for a run measured in steps, not epochs: "training", step N of the
    whole run, also after a resume (where Lightning's own shows "N/?")."""

    def on_train_start(self, trainer, *args) -> None:
        super().on_train_start(trainer, *args)
        self._count_steps(trainer)

    def on_train_epoch_start(self, trainer, *args) -> None:
        super().on_train_epoch_start(trainer, *args)
        self._count_steps(trainer)

    def _count_steps(self, trainer) -> None:
        bar = self.train_progress_bar
        bar.reset(total=trainer.max_steps)
        bar.initial = bar.n = trainer.global_step  # a resume's rate counts its own steps
        bar.set_description("training")


def progress_callbacks(enabled: bool, steps: bool = False) -> list:
    """What a Trainer shows progress with: on a terminal Lightning's bar (``StepsBar`` for a
    run of ``steps``), elsewhere ``TrainingLines``; use with ``enable_progress_bar=enabled``."""
    if not enabled:
        return []
    if to_terminal():
        return [StepsBar()] if steps else []
    return [TrainingLines()]


@dataclass
class SGDRecipe:
    """The optimisation recipe of the probe, fine-tuning and segmentation (a base of their
    configurations): SGD with momentum and weight decay, lr x``lr_gamma`` at each milestone
    (fractions of the run; the paper's 40k, 80k and 120k of 140k iterations)."""

    lr: float = 0.01
    momentum: float = 0.9
    weight_decay: float = 5e-4
    lr_milestones: tuple[float, ...] = LR_MILESTONES
    lr_gamma: float = 0.1


def sgd_with_steps(
    params, config: SGDRecipe, total_steps: int
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
        callbacks=progress_callbacks(progress),
        num_sanity_val_steps=0,
        limit_val_batches=0,
        use_distributed_sampler=False,
    )
    with quiet_lightning():
        trainer.fit(task, train_dataloaders=batches)
