"""A training that resumes exactly where it stopped, for the heads trained on a pre-trained
trunk (segmentation, detection): the deterministic sample stream, rolling atomic checkpoints in
the model's folder, stop signals that checkpoint the step reached, TensorBoard logs."""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from pathlib import Path

import lightning as L
import torch
from torch.utils.data import Dataset

from .checkpoints import (
    AtomicCheckpointIO,
    RollingCheckpoints,
    checkpoint_step,
    resumable_checkpoint,
)
from .fitting import progress_callbacks, quiet_lightning
from .folder import TensorBoardLog
from .signals import StopOnSignal
from .stream import StreamLoader

log = logging.getLogger("splitbrain.runs")


@dataclass(frozen=True)
class StepsDone:
    """What a resumable fit did in this sitting: its seconds and the steps it made."""

    seconds: float
    steps: int


def fit_resumable(
    task: L.LightningModule,
    dataset: Dataset,
    batch_size: int,
    total_steps: int,
    folder: Path,
    device: torch.device,
    precision: str,
    *,
    seed: int = 0,
    workers: int = 0,
    checkpoint_every: int = 100,
    progress: bool = True,
    name: str = "model",
) -> StepsDone:
    """Fit ``task`` for ``total_steps`` batches of ``dataset`` (its ``collate`` if it has
    one), resuming from ``folder/checkpoints``; raises ``Interrupted`` when a stop signal ended
    it (its checkpoint written)."""
    checkpoints = RollingCheckpoints(folder / "checkpoints", checkpoint_every)
    resume = resumable_checkpoint(folder / "checkpoints")
    with StopOnSignal(checkpoints) as stop:
        trainer = L.Trainer(
            accelerator="gpu" if device.type == "cuda" else "cpu",
            devices=1,
            precision=precision,
            max_steps=total_steps,
            max_epochs=-1,
            logger=TensorBoardLog(folder),
            log_every_n_steps=min(10, total_steps),
            callbacks=[checkpoints, stop, *progress_callbacks(progress, steps=True)],
            plugins=[AtomicCheckpointIO()],
            enable_checkpointing=False,
            enable_progress_bar=progress,
            enable_model_summary=False,
            num_sanity_val_steps=0,
            limit_val_batches=0,
            use_distributed_sampler=False,
        )
        first_step = checkpoint_step(resume) if resume else 0
        if resume:
            log.info("%s: resuming from %s (step %d of %d)", name, resume, first_step,
                     total_steps)  # fmt: skip
        loader = StreamLoader(dataset, batch_size, total_steps, seed, workers)
        start = time.perf_counter()
        with quiet_lightning():
            trainer.fit(task, datamodule=loader, ckpt_path=resume)
        seconds = time.perf_counter() - start
        if stop.step is not None:
            raise stop.interrupted(total_steps, False)
    return StepsDone(seconds, total_steps - first_step)
