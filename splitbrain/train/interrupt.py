"""Stop signals that lose nothing: SIGTERM (SLURM, Kubernetes, spot instances), SIGINT (Ctrl-C)
and SIGUSR1 (what SLURM sends before a job's time limit with ``--signal=USR1@SECONDS``).

While the training loop runs, a signal only raises a flag: the step in progress finishes, its
checkpoint is written (atomically, like every checkpoint), and the run ends with
``Interrupted``, whose exit code is the shell's 128 + signal number. Data-parallel ranks agree
to stop at the same step (any rank's signal stops all). A second SIGINT stops at once, without
that checkpoint. Before the loop (opening data, initialising) there is nothing to save, and
after it the last step's checkpoint is already written: there a signal ends the run at once.
Lightning registers its own SIGTERM handler when a fit starts (it would leave the loop without
a checkpoint); ours takes SIGTERM back at the start of training.
"""

from __future__ import annotations

import logging
import os
import re
import signal
import subprocess
import threading
from types import FrameType

import lightning as L

from ..errors import Interrupted, RunError
from .checkpoints import RollingCheckpoints, checkpoint_path
from .lock import RunLock

log = logging.getLogger("splitbrain.train")

STOP_SIGNALS = (signal.SIGTERM, signal.SIGINT, signal.SIGUSR1)


def ignore_stop_signals(worker_id: int | None = None) -> None:
    """For loader processes: the signals are the main process's business (SLURM signals every
    process of a job, a terminal's Ctrl-C the whole process group); a worker killed by one
    would fail the main process before it could write its checkpoint."""
    for signum in STOP_SIGNALS:
        signal.signal(signum, signal.SIG_IGN)


class StopOnSignal(L.Callback):
    """Install with ``with StopOnSignal(checkpoints) as stop:`` around the run; after the fit,
    ``stop.signal`` names the signal that ended it early (None when it ran to the end)."""

    def __init__(self, checkpoints: RollingCheckpoints, lock: RunLock | None = None) -> None:
        self.checkpoints = checkpoints
        self.lock = lock
        self.signal: signal.Signals | None = None
        self.step: int | None = None  # the step whose checkpoint was written on the way out
        self._phase = "before"  # before training, training, after it (writing the weights)
        self._previous: dict[int, object] = {}

    def __enter__(self) -> StopOnSignal:
        if threading.current_thread() is threading.main_thread():  # signals reach only it
            self._previous = {s: signal.signal(s, self._handle) for s in STOP_SIGNALS}
        return self

    def __exit__(self, *exc) -> None:
        for signum, handler in self._previous.items():
            signal.signal(signum, handler)
        self._previous = {}

    def __getstate__(self) -> dict:
        """What a spawned rank (``ddp_spawn``) receives: no lock thread, no handlers."""
        return {**self.__dict__, "lock": None, "_previous": {}}

    def _handle(self, signum: int, frame: FrameType | None) -> None:
        name = signal.Signals(signum)
        if self._phase == "before":
            raise Interrupted(name, "before training started: nothing to save yet")
        if self._phase == "after":
            raise Interrupted(name, "after the last step, whose checkpoint is kept")
        if self.signal is not None and name == signal.SIGINT:
            raise Interrupted(name, "again: stopped at once, without a checkpoint of this step")
        if self.signal is None:
            self.signal = name
            log.info("%s: finishing this step and writing its checkpoint", name.name)

    def on_train_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self._phase = "training"
        if self._previous:  # Lightning's fit set its own SIGTERM handler: take it back
            signal.signal(signal.SIGTERM, self._handle)

    def on_train_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self._phase = "after"

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        lost = self.lock is not None and self.lock.lost
        stop = self.signal is not None or lost
        if trainer.world_size > 1:
            stop = trainer.strategy.reduce_boolean_decision(stop, all=False)
        if not stop:
            return
        if lost:
            raise RunError(
                f"{self.lock.path}: another process took this run folder over while this one "
                "was suspended; stopped without writing anything more"
            )
        self.checkpoints.save(trainer, pl_module)
        self.step = trainer.global_step
        self.signal = self.signal or signal.SIGTERM  # another rank's signal
        trainer.should_stop = True

    def interrupted(self, total_steps: int, requeue: bool) -> Interrupted:
        """The exception that ends an interrupted run, after requeueing its SLURM job."""
        saved = checkpoint_path(self.checkpoints.folder, self.step)
        detail = f"at step {self.step} of {total_steps}: checkpoint {saved}"
        if requeue:
            detail += "; " + requeue_slurm_job()
        return Interrupted(self.signal, detail)


def requeue_slurm_job() -> str:
    """``scontrol requeue`` this SLURM job (an array task as ARRAY_TASK); what happened."""
    array = os.environ.get("SLURM_ARRAY_JOB_ID")
    job = f"{array}_{os.environ['SLURM_ARRAY_TASK_ID']}" if array else os.environ["SLURM_JOB_ID"]
    if not re.fullmatch(r"[0-9_]+", job):
        return f"not requeued (SLURM job id {job!r} is not a job id)"
    try:
        result = subprocess.run(["scontrol", "requeue", job], capture_output=True, text=True)
    except FileNotFoundError:
        return "not requeued (scontrol is not on PATH)"
    if result.returncode:
        reason = (result.stderr.strip().splitlines() or [f"exit {result.returncode}"])[-1]
        return f"requeueing SLURM job {job} failed ({reason})"
    return f"SLURM job {job} requeued: it resumes from this checkpoint when it starts again"
