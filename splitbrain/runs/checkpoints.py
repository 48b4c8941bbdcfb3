"""Checkpoints that survive faults: the newest K are kept, a resume takes the newest that loads
completely, and no checkpoint is written from non-finite weights.

A disk or copy error can truncate the newest file; one previous checkpoint (``keep`` = 2, the
default) costs a little disk and saves the run. Files are ``checkpoints/step-00001234.ckpt``;
writes are atomic (``AtomicCheckpointIO``), so a kill mid-write leaves only a hidden
temporary file, never a half checkpoint under a real name.
"""

from __future__ import annotations

import contextlib
import errno
import logging
import os
import re
from pathlib import Path

import lightning as L
import torch
from lightning.fabric.utilities.cloud_io import get_filesystem
from lightning.pytorch.plugins.io import TorchCheckpointIO

from ..atomic import atomic_write
from ..errors import CheckpointError, NonFiniteError
from ..weights import first_non_finite

log = logging.getLogger("splitbrain.runs")

_NAME = re.compile(r"^step-(\d+)\.ckpt$")
#: What Lightning needs to resume; a file without them did not come from a training run.
_REQUIRED = ("state_dict", "optimizer_states", "global_step", "loops")


def checkpoint_path(folder: Path, step: int) -> Path:
    return folder / f"step-{step:08d}.ckpt"


def checkpoint_step(path: Path) -> int:
    """The step a checkpoint was written at, from its name."""
    return int(_NAME.match(path.name).group(1))


def checkpoints(folder: Path) -> list[tuple[int, Path]]:
    """(step, path) of the checkpoints in ``folder``, newest first."""
    if not folder.is_dir():
        return []
    found = [(int(m.group(1)), p) for p in folder.iterdir() if (m := _NAME.match(p.name))]
    return sorted(found, reverse=True)


def checkpoint_problem(path: Path) -> str | None:
    """Why ``path`` cannot be resumed from (one line), or None when it loads completely.

    Loaded with ``weights_only=True``: a file that would run code when unpickled (one planted in
    a shared run folder) is reported unreadable before Lightning ever opens it, on every torch
    version, since our own checkpoints hold only tensors and plain Python values.
    """
    try:
        if path.stat().st_size == 0:
            return "empty (0 bytes)"
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as error:  # truncated zip, bit rot: anything torch raises
        text = str(error).strip() or type(error).__name__
        return f"unreadable ({text.splitlines()[0].split('. ')[0]})"  # torch adds advice
    if not isinstance(state, dict) or any(key not in state for key in _REQUIRED):
        return "not a training checkpoint (keys missing)"
    return None


def resumable_checkpoint(folder: Path, tidy: bool = True) -> Path | None:
    """The newest checkpoint in ``folder`` that loads completely (None when there are none).

    A newer one that does not load is named in a warning and, with ``tidy`` (the process that
    holds the run folder), renamed ``*.ckpt.corrupt`` (kept for inspection, out of the
    rotation), and leftovers of interrupted writes are removed. When none loads,
    CheckpointError, and nothing is renamed or deleted.
    """
    if folder.is_dir() and tidy:
        for stale in folder.glob(".step-*.ckpt.*.tmp"):  # what a kill during a write leaves
            log.info("%s: removing an interrupted checkpoint write", stale)
            stale.unlink(missing_ok=True)
    found = checkpoints(folder)
    bad: list[tuple[Path, str]] = []
    for _, path in found:
        problem = checkpoint_problem(path)
        if problem is None:
            for corrupt, _ in bad if tidy else ():
                with contextlib.suppress(FileNotFoundError):  # another rank renamed it
                    corrupt.rename(corrupt.with_name(corrupt.name + ".corrupt"))
            return path
        log.warning("%s: %s; trying the checkpoint before it", path, problem)
        bad.append((path, problem))
    if bad:
        listing = "; ".join(f"{path.name}: {problem}" for path, problem in bad)
        raise CheckpointError(
            f"{folder}: no checkpoint can be resumed from ({listing}); nothing was deleted: "
            "move the folder aside to start again"
        )
    return None


class RollingCheckpoints(L.Callback):
    """A checkpoint every ``every`` steps and at the end, the newest ``keep`` kept.

    Before writing, the weights are checked: a NaN or infinity stops the run (NonFiniteError)
    instead of replacing a good checkpoint with a poisoned one. A run folder (the folder of
    ``folder``) that disappeared stops it too, at the end of the step that finds it gone
    (FileNotFoundError naming it): a checkpoint written there would make it again, on another
    disk than the run's if it was a mount that was lost.
    """

    def __init__(self, folder: Path, every: int, keep: int = 2) -> None:
        if keep < 1:
            raise ValueError(f"keep at least one checkpoint, got {keep}")
        self.folder = Path(folder)
        self.every = every
        self.keep = keep
        self.last_saved = -1

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        if trainer.global_step % self.every == 0:
            self.save(trainer, pl_module)
        elif trainer.is_global_zero:  # the rank that writes: another node may cache the folder
            self._check_run_folder()

    def on_train_end(self, trainer, pl_module) -> None:
        self.save(trainer, pl_module)

    def _check_run_folder(self) -> None:
        run = self.folder.parent
        if not run.is_dir():
            raise FileNotFoundError(errno.ENOENT, os.strerror(errno.ENOENT), str(run))

    def save(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        step = trainer.global_step
        if step == self.last_saved or step == 0:
            return
        poisoned = first_non_finite(pl_module.state_dict())
        if poisoned is not None:
            raise NonFiniteError(
                f"step {step}: {poisoned} is not finite; no checkpoint written, the previous "
                f"ones in {self.folder} are intact"
            )
        if trainer.is_global_zero:
            self._check_run_folder()
        # the whole state (optimizer, loops, callbacks): what an exact resume needs; saying so
        # also keeps Lightning from logging its default at every checkpoint
        trainer.save_checkpoint(checkpoint_path(self.folder, step), weights_only=False)
        self.last_saved = step
        if trainer.is_global_zero:
            for _, old in checkpoints(self.folder)[self.keep :]:
                old.unlink(missing_ok=True)


def _save(checkpoint: dict, path: str) -> None:
    with open(path, "wb") as file:  # through a file object a full disk is an OSError
        torch.save(checkpoint, file)


class AtomicCheckpointIO(TorchCheckpointIO):
    """Checkpoints are written to a temporary file and renamed: never half a file."""

    def save_checkpoint(self, checkpoint: dict, path, storage_options=None) -> None:
        atomic_write(path, lambda tmp: _save(checkpoint, tmp))

    def remove_checkpoint(self, path) -> None:
        fs = get_filesystem(path)
        if fs.exists(path):
            fs.rm(path, recursive=True)
