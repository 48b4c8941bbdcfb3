"""Stop signals that lose nothing: SIGTERM (SLURM, Kubernetes, spot instances), SIGINT (Ctrl-C)
and SIGUSR1 (what SLURM sends before a job's time limit with ``--signal=USR1@SECONDS``).

While the training loop runs, a signal only raises a flag: the step in progress finishes, its
checkpoint is written (atomically, like every checkpoint), and the run ends with
``Interrupted``, whose exit code is the shell's 128 + signal number. Data-parallel ranks agree
at every step end (one reduction of a small code: the highest signal number any rank got, or
that rank 0's lock was taken over) and all stop at the same step, with the same outcome. A
second SIGINT stops at once, without that checkpoint; other repeated signals are ignored while
the run stops. A signal during the last step changes nothing: the run ends there anyway and
writes its weights. Before the loop (opening data, initialising) there is nothing to save, and
after it the last step's checkpoint is already written: there a signal ends the run at once.
Lightning registers its own SIGTERM handler just before the loop (it would leave the loop
without a checkpoint and kill the other ranks); ours takes SIGTERM back as the loop starts.
Handlers can only be installed from the main thread: elsewhere signals keep their handlers.
Outside these runs (before and after them, and in the fits that keep no checkpoint) the
command line's handlers (``splitbrain.cli.stops_end_the_command``) end a command at once with
``Interrupted``; a run's handlers take over from them and hand back on leaving.
"""

from __future__ import annotations

import atexit
import functools
import logging
import multiprocessing
import os
import re
import signal
import subprocess
import threading
from types import FrameType

import lightning as L
import torch
from lightning.fabric.utilities.seed import pl_worker_init_function

from ..errors import Interrupted, RunError
from .checkpoints import RollingCheckpoints, checkpoint_path
from .lock import RunLock

log = logging.getLogger("splitbrain.runs")

STOP_SIGNALS = (signal.SIGTERM, signal.SIGINT, signal.SIGUSR1)
_LOST = 255  # the agreed code when rank 0's lock was taken over (above any signal number)


def ignore_stop_signals(worker_id: int) -> None:
    """A loader worker's start: the signals are the main process's business (SLURM signals
    every process of a job, a terminal's Ctrl-C the whole process group, and a worker killed
    by one fails the main process before it can stop in one line or write its checkpoint).
    The main process ends them at exit if nothing else did (``end_loader_workers_at_exit``)."""
    for signum in STOP_SIGNALS:
        signal.signal(signum, signal.SIG_IGN)


def ignore_stop_signals_and_seed(worker_id: int) -> None:
    """``ignore_stop_signals``, then Lightning's seeding of worker processes, which this
    replaces as the training stream's ``worker_init_fn``."""
    ignore_stop_signals(worker_id)
    pl_worker_init_function(worker_id)


@functools.cache
def end_loader_workers_at_exit() -> None:
    """Kill, at this process's exit, the loader workers still alive (once registered, however
    often called). After an error whose traceback keeps a loader alive, Python's exit ends
    daemonic children with SIGTERM and waits for them: workers that ignore it (above) would
    keep the process waiting forever. atexit runs last what registered first, so this runs
    before multiprocessing's own handler, which then finds nothing left to wait for."""
    atexit.register(_kill_daemonic_children)


def _kill_daemonic_children() -> None:
    children = [p for p in multiprocessing.active_children() if p.daemon]
    if not children:
        return
    if threading.current_thread() is threading.main_thread():
        # torch's SIGCHLD handler would report each kill as a worker that failed
        signal.signal(signal.SIGCHLD, signal.SIG_DFL)
    for child in children:
        child.kill()
    for child in children:
        child.join()


class StopOnSignal(L.Callback):
    """Install with ``with StopOnSignal(checkpoints) as stop:`` around the run; after the fit,
    ``stop.step`` is the step an interrupted run stopped at (its checkpoint written), None
    when it ran to the end."""

    def __init__(self, checkpoints: RollingCheckpoints, lock: RunLock | None = None) -> None:
        self.checkpoints = checkpoints
        self.lock = lock
        self.signal: signal.Signals | None = None  # the first one this process received
        self.step: int | None = None
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
        if self.signal is not None:  # already stopping
            if name == signal.SIGINT:
                raise Interrupted(name, "again: stopped at once, without a checkpoint of this step")
            return
        if self._phase == "before":
            raise Interrupted(name, "before training started: nothing to save yet")
        if self._phase == "after":
            raise Interrupted(name, "after the last step, whose checkpoint is kept")
        self.signal = name
        log.info("%s: finishing this step and writing its checkpoint", name.name)

    def on_train_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self._phase = "training"
        if self._previous:  # Lightning's fit set its own SIGTERM handler: take it back
            signal.signal(signal.SIGTERM, self._handle)

    def on_train_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self._phase = "after"

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        code = _LOST if self.lock is not None and self.lock.lost else int(self.signal or 0)
        if trainer.world_size > 1:  # the same decision on every rank
            agreed = trainer.strategy.reduce(
                torch.tensor(code, device=pl_module.device), reduce_op="max"
            )
            code = int(agreed)
        if code == 0 or trainer.global_step >= trainer.max_steps:  # the last step ends it anyway
            return
        if code == _LOST:
            raise RunError(
                f"{self.checkpoints.folder.parent}: another process took this run folder over "
                "while this one was suspended; stopped without writing anything more"
            )
        self.checkpoints.save(trainer, pl_module)
        self.step = trainer.global_step
        self.signal = signal.Signals(code)  # on every rank, the signal that stopped the run
        trainer.should_stop = True

    def interrupted(self, total_steps: int, requeue: bool) -> Interrupted:
        """The exception that ends an interrupted run, after requeueing its SLURM job."""
        saved = checkpoint_path(self.checkpoints.folder, self.step)
        detail = f"at step {self.step} of {total_steps}: checkpoint {saved}"
        if requeue:
            detail += "; " + requeue_slurm_job()
        return Interrupted(self.signal, detail)


def requeue_slurm_job() -> str:
    """``scontrol requeue`` this SLURM job (an array task as ARRAYJOB_TASK); what happened."""
    array = os.environ.get("SLURM_ARRAY_JOB_ID")
    job = f"{array}_{os.environ['SLURM_ARRAY_TASK_ID']}" if array else os.environ["SLURM_JOB_ID"]
    if not re.fullmatch(r"[0-9_]+", job):
        return f"not requeued (SLURM job id {job!r} is not a job id)"
    try:
        result = subprocess.run(
            ["scontrol", "requeue", job], capture_output=True, text=True, timeout=60
        )
    except FileNotFoundError:
        return "not requeued (scontrol is not on PATH)"
    except subprocess.TimeoutExpired:
        return "not requeued (scontrol gave no answer in 60 s)"
    if result.returncode:
        reason = (result.stderr.strip().splitlines() or [f"exit {result.returncode}"])[-1]
        return f"requeueing SLURM job {job} failed ({reason})"
    return f"SLURM job {job} requeued: it resumes from this checkpoint when it starts again"
