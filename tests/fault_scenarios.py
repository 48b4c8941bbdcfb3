"""The fault scenarios: what a pre-training run does when something goes wrong, one row each.

Each scenario runs the real command line in a subprocess, with the fault injected where it
cannot be caused from outside (a kill in the middle of a checkpoint write, a full disk, a NaN),
then runs the same command again. Columns: what the user saw, the exit status of the faulted
command and of the re-run, the finished work lost (checkpoints and weights written before the
fault), and whether the re-run's weights equal those of a run that never met the fault, the
seconds from the fault to the command's exit and the processes of the command (loader workers)
alive after it exited. tests/e2e/test_faults.py and test_broken_runs.py check every row;
benchmarks/faults.py prints the table.
"""

from __future__ import annotations

import json
import os
import pickle
import shutil
import signal
import socket
import struct
import subprocess
import sys
import tempfile
import time
import zlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from PIL import Image

import splitbrain as sb
from splitbrain.data import open_source
from splitbrain.runs.checkpoints import checkpoints
from splitbrain.runs.lock import LOCK_NAME, RunLock
from splitbrain.weights import load

REPO = Path(__file__).resolve().parents[1]
SHARED = REPO.parent / "shared" / "data" / "cifar10" / "exact_train.npz"
STEPS, EVERY = 6, 2
#: The commands that run loader worker processes (colorize reads its photos itself).
COMMANDS = ("pretrain", "probe", "knn", "finetune", "segment", "extract")

#: The line a patch writes to stderr as it injects its fault: the start of "exit after".
FAULT = "fault injected at"
#: Run the command line with a fault patched in: ``python -c PRELUDE+PATCH+MAIN pretrain ...``.
PRELUDE = f"""import errno, os, shutil, signal, subprocess, sys, time, torch
import splitbrain.runs.checkpoints as saving
import splitbrain.train.task as task
def fault():
    print({FAULT!r}, time.time(), file=sys.stderr, flush=True)
"""
MAIN = "\nfrom splitbrain.cli import entry_point\nentry_point()\n"
#: The second checkpoint write (step 4) dies half-way: the process is SIGKILLed mid-file.
KILL_IN_WRITE = """
original, calls = saving._save, []
def save(checkpoint, path):
    calls.append(path)
    if len(calls) == 2:
        with open(path, "wb") as file:
            file.write(b"PK" + bytes(4096))
            file.flush()
        os.kill(os.getpid(), signal.SIGKILL)
    original(checkpoint, path)
saving._save = save
"""
#: The second checkpoint write (step 4) meets a full disk.
DISK_FULL = """
original, calls = saving._save, []
def save(checkpoint, path):
    calls.append(path)
    if len(calls) == 2:
        fault()
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
    original(checkpoint, path)
saving._save = save
"""
#: At the start of a step (filled in), something goes wrong (one statement, filled in): from
#: the outside a fault cannot be timed to land mid-run in a run of a few steps.
DURING_STEP = """
original = task.PretrainTask.training_step
def training_step(self, batch, index):
    if self.global_step == {step}:
        fault()
        {action}
    return original(self, batch, index)
task.PretrainTask.training_step = training_step
"""
#: The signal to every process of the job, from another process, as SLURM's step daemon or a
#: terminal sends it.
JOB_KILL = (
    "(lambda s: subprocess.run([sys.executable, '-c', "
    "f'import os; os.killpg({os.getpgid(0)}, {int(s)})']))"
)
#: A stand-in for SLURM's scontrol: records its arguments.
SCONTROL = '#!/bin/sh\necho "$@" >> "$(dirname "$0")/scontrol.calls"\n'
#: The weights of the first half turn NaN (as a diverging run's would).
NAN = 'next(self.model.encoders[0].parameters()).data.fill_(float("nan"))'
#: The run folder is removed (a cleaner, a lost mount).
FOLDER_REMOVED = "shutil.rmtree(self.config.out)"
#: Another process took the run folder over (what the lock's heartbeat finds, made at once).
LOCK_LOST = (
    'setattr(next(c for c in self.trainer.callbacks if hasattr(c, "lock")).lock, "lost", True)'
)
#: A callback raises (a bug in it): Lightning's learning-rate monitor, which every run has.
CALLBACK_FAILS = """
from lightning.pytorch.callbacks import LearningRateMonitor
def on_train_batch_start(self, trainer, *args):
    if trainer.global_step == 3:
        fault()
        raise RuntimeError("a bug in a callback")
LearningRateMonitor.on_train_batch_start = on_train_batch_start
"""
#: The third batch of a loader with worker processes fails in the main process, whatever the
#: command: an error while loader workers run.
LOADER_FAILS = """
from torch.utils.data import dataloader
original, calls = dataloader._MultiProcessingDataLoaderIter.__next__, []
def next_batch(self):
    calls.append(1)
    if len(calls) == 3:
        fault()
        raise RuntimeError("a fault while loader workers ran")
    return original(self)
dataloader._MultiProcessingDataLoaderIter.__next__ = next_batch
"""
#: How long the processes a command leaves are watched before they are called left behind.
LINGER = 30.0
#: A command that has not exited after this many seconds is called hung, and killed.
HUNG = 300.0


@dataclass
class Row:
    scenario: str
    seen: str  # the line the user saw
    fault_status: int
    rerun_status: int | None
    lost: str
    equal: str  # "yes", "no", or "-" where there is nothing to compare
    exit_after: float | None = None  # seconds from the injected fault to the command's exit
    left: str = "none"  # the command's processes alive after it exited
    traceback: bool = False  # whether the faulted command printed one


class Outcome(subprocess.CompletedProcess):
    """A finished command: its status and output (the fault's clock line taken out), the
    seconds from the fault to its exit, and what it left running."""

    exit_after: float | None
    left: str

    def measures(self) -> dict:
        """The columns of a row that this command's fault fills."""
        return {
            "exit_after": self.exit_after,
            "left": self.left,
            "traceback": "Traceback" in self.stderr,
        }


class Faults:
    """Scenarios on ``data`` in folders under ``root``; the uninterrupted run is made once."""

    def __init__(self, data: str, root: Path) -> None:
        self.data = data
        self.root = root
        self._reference: dict[str, torch.Tensor] | None = None

    def command(
        self, out: Path, *extra: str, data: str | None = None, workers: int = 0
    ) -> list[str]:
        return [
            "pretrain", "--data", data or self.data, "--preset", "small", "--width", "0.125",
            "--batch-size", "8", "--steps", str(STEPS), "--checkpoint-every", str(EVERY),
            "--workers", str(workers), "--no-progress", "--out", str(out), *extra,
        ]  # fmt: skip

    def run(self, args: list[str], patch: str | None = None, env: dict | None = None) -> Outcome:
        """The command line in a session of its own; its output through files, so that its
        exit is timed even while processes it left hold its output open."""
        if patch is None:
            argv = [sys.executable, "-m", "splitbrain", *args]
        else:
            argv = [sys.executable, "-c", PRELUDE + patch + MAIN, *args]
        with tempfile.TemporaryFile("w+") as out, tempfile.TemporaryFile("w+") as err:
            process = subprocess.Popen(
                argv, stdout=out, stderr=err, text=True, cwd=REPO, env=env,
                start_new_session=True,
            )  # fmt: skip
            try:
                status = process.wait(timeout=HUNG)
                exited, left = time.time(), _left(process.pid)
            except subprocess.TimeoutExpired:
                left = f"{_group(process.pid)}: never exited (killed after {HUNG:.0f} s)"
                os.killpg(process.pid, signal.SIGKILL)
                status, exited = process.wait(), None
            out.seek(0), err.seek(0)
            stdout, stderr = out.read(), err.read()
        marks = [line for line in stderr.splitlines() if line.startswith(FAULT)]
        outcome = Outcome(argv, status, stdout, "".join(
            line for line in stderr.splitlines(keepends=True) if not line.startswith(FAULT)
        ))  # fmt: skip
        fault = float(marks[0].split()[-1]) if marks else None
        outcome.exit_after = exited - fault if exited and fault else None
        outcome.left = left
        return outcome

    def folder(self, name: str) -> Path:
        path = self.root / name
        shutil.rmtree(path, ignore_errors=True)
        return path

    def equal(self, out: Path) -> str:
        """Whether ``out``'s weights equal the uninterrupted run's, bit for bit."""
        if self._reference is None:
            reference = self.folder("uninterrupted")
            self.run(self.command(reference)).check_returncode()
            self._reference = load(reference / "weights.safetensors").state_dict()
        weights = out / "weights.safetensors"
        if not weights.exists():
            return "no weights"
        ours = load(weights).state_dict()
        same = all(torch.equal(ours[k], v) for k, v in self._reference.items())
        return "yes" if same else "no"

    # ------------------------------------------------------------------ scenarios

    def sigkill_during_training(self) -> Row:
        out = self.folder("killed")
        process = subprocess.Popen(
            [sys.executable, "-m", "splitbrain", *self.command(out)],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, cwd=REPO,
        )  # fmt: skip
        deadline = time.time() + 300
        while not checkpoints(out / "checkpoints") and process.poll() is None:
            if time.time() > deadline:
                raise TimeoutError("no checkpoint within 300 s")
            time.sleep(0.01)
        process.send_signal(signal.SIGKILL)
        status = process.wait()
        kept = checkpoints(out / "checkpoints")
        rerun = self.run(self.command(out))
        return Row(
            "SIGKILL during training", _line(rerun, "resuming"), status, rerun.returncode,
            _lost(kept), self.equal(out),
        )  # fmt: skip

    def sigkill_during_checkpoint_write(self) -> Row:
        out = self.folder("killed-in-write")
        faulted = self.run(self.command(out), KILL_IN_WRITE)
        kept = checkpoints(out / "checkpoints")
        rerun = self.run(self.command(out))
        return Row(
            "SIGKILL while writing a checkpoint", _line(rerun, "resuming"),
            faulted.returncode, rerun.returncode, _lost(kept), self.equal(out),
        )  # fmt: skip

    def damaged_checkpoint(self, damage: str) -> Row:
        out = self.folder(f"damaged-{damage}")
        self.run(self.command(out)).check_returncode()
        (_, newest), *_ = checkpoints(out / "checkpoints")
        data = newest.read_bytes()
        newest.write_bytes(data[: len(data) // 2] if damage == "truncated" else b"")
        rerun = self.run(self.command(out))
        corrupt = newest.with_name(newest.name + ".corrupt")
        lost = "none (the damaged file kept as *.corrupt)" if corrupt.exists() else "the file"
        return Row(
            f"{damage} newest checkpoint", _line(rerun, "trying the checkpoint before"),
            0, rerun.returncode, lost, self.equal(out),
        )  # fmt: skip

    def no_checkpoint_loads(self) -> Row:
        out = self.folder("all-damaged")
        self.run(self.command(out)).check_returncode()
        before = checkpoints(out / "checkpoints")
        for _, path in before:
            path.write_bytes(b"")
        rerun = self.run(self.command(out))
        after = checkpoints(out / "checkpoints")
        lost = "none (nothing deleted)" if after == before else "files were moved or deleted"
        return Row(
            "every checkpoint unreadable", _line(rerun, "error"), 0, rerun.returncode, lost, "-"
        )

    def changed_recipe(self) -> Row:
        out = self.folder("changed")
        self.run(self.command(out)).check_returncode()
        config = (out / "config.yaml").read_text()
        rerun = self.run(self.command(out, "--batch-size", "16", "--seed", "1"))
        lost = "none (run folder untouched)" if (out / "config.yaml").read_text() == config else ""
        return Row(
            "changed recipe (--batch-size, --seed)", _line(rerun, "error"), 0, rerun.returncode,
            lost or "config.yaml changed", self.equal(out),
        )  # fmt: skip

    def nan_loss(self, workers: int = 0) -> Row:
        out = self.folder(f"nan{_workers_suffix(workers)}")
        faulted = self.run(
            self.command(out, workers=workers), DURING_STEP.format(step=3, action=NAN)
        )
        kept = checkpoints(out / "checkpoints")
        finite = all(
            bool(v.isfinite().all())
            for _, path in kept
            for v in torch.load(path, weights_only=False)["state_dict"].values()
            if v.is_floating_point()
        )
        weights = (out / "weights.safetensors").exists()
        rerun = self.run(self.command(out))
        lost = _lost(kept) + ("" if finite and not weights else "; NaN written")
        return Row(
            f"NaN loss at step 3{_workers_note(workers)}", _line(faulted, "error"),
            faulted.returncode, rerun.returncode, lost, self.equal(out), **faulted.measures(),
        )  # fmt: skip

    def disk_full(self, workers: int = 0) -> Row:
        out = self.folder(f"disk-full{_workers_suffix(workers)}")
        faulted = self.run(self.command(out, workers=workers), DISK_FULL)
        kept = checkpoints(out / "checkpoints")
        leftovers = list((out / "checkpoints").glob(".*.tmp"))
        rerun = self.run(self.command(out))
        lost = _lost(kept) + (f"; {len(leftovers)} temporary files left" if leftovers else "")
        return Row(
            f"disk full while writing a checkpoint{_workers_note(workers)}",
            _line(faulted, "error"), faulted.returncode, rerun.returncode, lost,
            self.equal(out), **faulted.measures(),
        )  # fmt: skip

    def folder_removed(self, workers: int = 2) -> Row:
        """The run folder removed during step 3: nothing is left to resume from."""
        out = self.folder(f"removed{_workers_suffix(workers)}")
        patch = DURING_STEP.format(step=3, action=FOLDER_REMOVED)
        faulted = self.run(self.command(out, workers=workers), patch)
        gone = not out.exists()
        rerun = self.run(self.command(out))
        return Row(
            f"run folder removed at step 3{_workers_note(workers)}", _line(faulted, "error"),
            faulted.returncode, rerun.returncode,
            "the whole run (its folder is gone); the re-run starts afresh" if gone else "?",
            self.equal(out), **faulted.measures(),
        )  # fmt: skip

    def lock_lost(self, workers: int = 2) -> Row:
        """Another process took the run folder over (this one was suspended too long)."""
        out = self.folder(f"lock-lost{_workers_suffix(workers)}")
        patch = DURING_STEP.format(step=3, action=LOCK_LOST)
        faulted = self.run(self.command(out, workers=workers), patch)
        kept = checkpoints(out / "checkpoints")
        rerun = self.run(self.command(out))
        return Row(
            f"run folder taken over by another process{_workers_note(workers)}",
            _line(faulted, "error"), faulted.returncode, rerun.returncode, _lost(kept),
            self.equal(out), **faulted.measures(),
        )  # fmt: skip

    def callback_fails(self, workers: int = 2) -> Row:
        """A callback raises at step 3 (a bug): a traceback, and an end."""
        out = self.folder(f"callback{_workers_suffix(workers)}")
        faulted = self.run(self.command(out, workers=workers), CALLBACK_FAILS)
        kept = checkpoints(out / "checkpoints")
        rerun = self.run(self.command(out))
        return Row(
            f"an error in a callback at step 3{_workers_note(workers)}",
            _line(faulted, "RuntimeError"), faulted.returncode, rerun.returncode,
            _lost(kept), self.equal(out), **faulted.measures(),
        )  # fmt: skip

    def loader_error(self, command: str) -> Row:
        """``command`` with 2 loader workers, failing at its third batch."""
        inputs = self._command_inputs()
        out = self.folder(f"loader-error-{command}")
        weights, data = str(inputs / "w.safetensors"), f"npz:{inputs / 'train.npz'}"
        evaluation = ["--weights", weights, "--data", data, "--test-data", data, "--epochs", "1"]
        argv = {
            "pretrain": self.command(out),
            "probe": ["probe", *evaluation, "--layers", "conv1", "--out", str(out)],
            "knn": ["knn", *evaluation[:6], "--layers", "conv5", "--k", "5", "--out", str(out)],
            "finetune": ["finetune", *evaluation, "--out", str(out)],
            "segment": ["segment", "--weights", weights, "--data", f"camvid:{inputs / 'camvid'}",
                        "--epochs", "1", "--resize", "60", "--crop", "48", "--out", str(out)],
            "extract": ["extract", "--weights", weights, "--data", data, "--layers", "conv5",
                        "--out", str(out) + ".npz"],
        }[command]  # fmt: skip
        workers = ["--workers", "2", "--no-progress", "--batch-size", "2"]
        faulted = self.run([*argv, *workers], LOADER_FAILS)
        return Row(
            f"{command}: an error at the third batch, 2 loader workers",
            _line(faulted, "RuntimeError"), faulted.returncode, None, "-", "-",
            **faulted.measures(),
        )  # fmt: skip

    def _command_inputs(self) -> Path:
        """A tiny network, 64 labelled images and a CamVid-layout folder of 8 frames."""
        folder = self.root / "command-inputs"
        if folder.is_dir():
            return folder
        source = open_source(self.data)
        images = np.stack([source[i % len(source)] for i in range(64)])
        folder.mkdir(parents=True)
        np.savez(folder / "train.npz", images=images, labels=np.arange(64) % 4)
        torch.manual_seed(0)
        sb.save(sb.build("splitbrain", preset="small", width=0.125), folder / "w.safetensors")
        rng = np.random.default_rng(0)
        for split in ("train", "val"):
            (folder / "camvid" / split).mkdir(parents=True)
            (folder / "camvid" / f"{split}annot").mkdir()
            for k in range(8):
                photo = Image.fromarray(images[k]).resize((64, 48))
                photo.save(folder / "camvid" / split / f"f{k}.png")
                mask = rng.integers(0, 12, (48, 64), dtype=np.uint8)  # 11 is CamVid's void
                Image.fromarray(mask).save(folder / "camvid" / f"{split}annot" / f"f{k}.png")
        return folder

    def stop_signal(self, name: str, whole_job: bool = False, step: int = 2) -> Row:
        """A stop signal during ``step``: to the process, or (``whole_job``) to every process
        of the job, loader workers included, as SLURM and a terminal's Ctrl-C send it."""
        last = step == STEPS - 1
        out = self.folder(f"{name.lower()}{'-job' if whole_job else ''}{'-last' if last else ''}")
        send = JOB_KILL if whole_job else "signal.raise_signal"
        patch = DURING_STEP.format(step=step, action=f"{send}(signal.{name})")
        faulted = self.run(self.command(out, workers=2 if whole_job else 0), patch)
        kept = checkpoints(out / "checkpoints")
        rerun = self.run(self.command(out))
        reached = kept and f"at step {kept[0][0]} of" in faulted.stderr
        lost = f"none (checkpoint at step {kept[0][0]}, the step reached)" if reached else "?"
        scenario = f"{name} during training" + (", to every process (2 loader workers)"
                                                 if whole_job else "")  # fmt: skip
        if last:  # the run ends there anyway, with its weights
            scenario, lost = f"{name} during the last step", "none (the run finished)"
        return Row(
            scenario, _line(faulted, "last step" if last else "interrupted"),
            faulted.returncode, rerun.returncode, lost, self.equal(out), **faulted.measures(),
        )  # fmt: skip

    def slurm_requeue(self) -> Row:
        """SIGUSR1 before a SLURM time limit, with --requeue: checkpoint, then scontrol."""
        out = self.folder("slurm")
        bin_dir = self.folder("slurm-bin")
        bin_dir.mkdir(parents=True)
        (bin_dir / "scontrol").write_text(SCONTROL)
        (bin_dir / "scontrol").chmod(0o755)
        env = {**os.environ, "SLURM_JOB_ID": "4242", "PATH": f"{bin_dir}:{os.environ['PATH']}"}
        patch = DURING_STEP.format(step=2, action="signal.raise_signal(signal.SIGUSR1)")
        faulted = self.run(self.command(out, "--requeue"), patch, env)
        calls = bin_dir / "scontrol.calls"
        requeued = calls.exists() and calls.read_text().strip() == "requeue 4242"
        rerun = self.run(self.command(out, "--requeue"), env=env)
        return Row(
            "SIGUSR1 under SLURM with --requeue", _line(faulted, "interrupted"),
            faulted.returncode, rerun.returncode,
            "none (scontrol requeue 4242 called)" if requeued else "not requeued",
            self.equal(out), **faulted.measures(),
        )  # fmt: skip

    def second_run(self) -> Row:
        """A second run on a folder that a live process holds."""
        out = self.folder("held")
        with RunLock(out):
            second = self.run(self.command(out))
            untouched = sorted(p.name for p in out.iterdir()) == [LOCK_NAME]
        return Row(
            "a second run on a live run folder", _line(second, "error"), second.returncode,
            None, "none (folder untouched)" if untouched else "the second run wrote", "-",
        )  # fmt: skip

    def stale_lock(self) -> Row:
        """A lock left by a process that died (SIGKILL, a crashed node of this host)."""
        out = self.folder("stale")
        out.mkdir(parents=True)
        dead = subprocess.Popen(["true"])
        dead.wait()
        holder = {"pid": dead.pid, "host": socket.gethostname(), "since": time.time()}
        (out / LOCK_NAME).write_text(json.dumps(holder))
        rerun = self.run(self.command(out))
        return Row(
            "a lock whose holder died", _line(rerun, "stale lock"), 0, rerun.returncode,
            "none", self.equal(out),
        )  # fmt: skip

    def _photo_folder(self, name: str, count: int) -> Path:
        """``count`` of the data's images (repeated if it has fewer) as JPEGs in one folder."""
        folder = self.folder(name)
        (folder / "photos").mkdir(parents=True)
        source = open_source(self.data)
        for i in range(count):
            image = source[i % len(source)]
            Image.fromarray(image).save(folder / "photos" / f"{i:03d}.jpg", quality=95)
        return folder

    def bad_files(self) -> Row:
        folder = self._photo_folder("bad-files", 400)  # 3 broken files: under the 1% limit
        photos = folder / "photos"
        jpeg = (photos / "000.jpg").read_bytes()
        (photos / "truncated.jpg").write_bytes(jpeg[: len(jpeg) // 2])
        (photos / "empty.jpg").write_bytes(b"")
        (photos / "text.jpg").write_text("not an image\n")
        Image.open(photos / "001.jpg").convert("P").save(photos / "palette.gif")
        out = self.folder("bad-files-run")
        result = self.run(self.command(out, data=f"folder:{folder}"))
        return Row(
            "folder with broken and odd files", _line(result, "skipped"), result.returncode,
            None, "none", "-",
        )  # fmt: skip

    def decompression_bomb(self) -> Row:
        folder = self._photo_folder("bomb", 200)
        (folder / "photos" / "bomb.png").write_bytes(_bomb_png(30_000, 30_000))
        out = self.folder("bomb-run")
        result = self.run(self.command(out, data=f"folder:{folder}"))
        return Row(
            "decompression bomb in the folder", _line(result, "skipped"), result.returncode,
            None, "none", "-",
        )  # fmt: skip

    def pickle_as_weights(self) -> Row:
        folder = self.folder("pickle")
        folder.mkdir(parents=True)
        marker = folder / "code-ran"
        evil = folder / "weights.safetensors"
        evil.write_bytes(pickle.dumps(_Exploit(str(marker))))
        result = self.run(["info", str(evil)])
        ran = "code ran!" if marker.exists() else "none (no code ran)"
        return Row("pickle posing as weights", _line(result, "error"), result.returncode, None,
                   ran, "-")  # fmt: skip

    def all(self) -> list[Row]:
        return [
            self.sigkill_during_training(),
            self.sigkill_during_checkpoint_write(),
            self.damaged_checkpoint("truncated"),
            self.damaged_checkpoint("zero-byte"),
            self.no_checkpoint_loads(),
            self.changed_recipe(),
            self.nan_loss(),
            self.disk_full(),
            self.folder_removed(),
            self.disk_full(workers=2),
            self.nan_loss(workers=2),
            self.lock_lost(),
            self.callback_fails(),
            *(self.loader_error(command) for command in COMMANDS),
            self.stop_signal("SIGTERM"),
            self.stop_signal("SIGINT"),
            self.stop_signal("SIGTERM", whole_job=True),
            self.stop_signal("SIGTERM", step=STEPS - 1),
            self.slurm_requeue(),
            self.second_run(),
            self.stale_lock(),
            self.bad_files(),
            self.decompression_bomb(),
            self.pickle_as_weights(),
        ]


class _Exploit:
    def __init__(self, marker: str) -> None:
        self.marker = marker

    def __reduce__(self):
        return os.system, (f"touch {self.marker}",)


def _bomb_png(width: int, height: int) -> bytes:
    """A PNG header declaring ``width`` x ``height`` pixels, with almost no data."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        body = kind + data
        return struct.pack(">I", len(data)) + body + struct.pack(">I", zlib.crc32(body))

    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    idat = zlib.compress(bytes(1 + 3 * 16))
    return (
        b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", idat) + chunk(b"IEND", b"")
    )


def _workers_note(workers: int) -> str:
    return f", {workers} loader workers" if workers else ""


def _workers_suffix(workers: int) -> str:
    return f"-{workers}-workers" if workers else ""


def _group(pgid: int) -> int:
    """How many live processes (zombies aside) process group ``pgid`` holds (Linux)."""
    count = 0
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            state, _, group = stat.read_text().rsplit(")", 1)[1].split()[:3]
        except (OSError, ValueError):
            continue  # a process that ended while it was read
        count += int(group) == pgid and state != "Z"
    return count


def _left(pgid: int) -> str:
    """The processes a command left in its process group when it exited: none, or how many
    and how long they took to end on their own (killed after ``LINGER`` seconds)."""
    start, found = time.monotonic(), _group(pgid)
    while (alive := _group(pgid)) and time.monotonic() - start < LINGER:
        time.sleep(0.05)
    if not found:
        return "none"
    if not alive:
        return f"{found}, ended {time.monotonic() - start:.1f} s later"
    os.killpg(pgid, signal.SIGKILL)
    return f"{alive} still running after {LINGER:.0f} s (killed)"


def _lost(kept: list[tuple[int, Path]]) -> str:
    """Work lost to a fault that left ``kept`` checkpoints: the steps after the newest."""
    if not kept:
        return "no checkpoint yet"
    return f"none (steps after {kept[0][0]} redone)"


def _line(result: subprocess.CompletedProcess, key: str) -> str:
    """The first output line containing ``key``, else the last line of stderr."""
    lines = [line.strip() for line in (result.stdout + result.stderr).splitlines()]
    found = next((line for line in lines if key in line), None)
    return found or next((line for line in reversed(lines) if line), "")


def markdown(rows: list[Row]) -> str:
    lines = [
        "| scenario | what the user saw | exit | exit after the fault | processes left "
        "| re-run exit | finished work lost | re-run equals uninterrupted |",
        "|---|---|---:|---:|---|---:|---|---|",
    ]  # fmt: skip
    for r in rows:
        rerun = "-" if r.rerun_status is None else str(r.rerun_status)
        after = "-" if r.exit_after is None else f"{r.exit_after:.1f} s"
        seen = r.seen.replace("|", "\\|")
        lines.append(
            f"| {r.scenario} | `{seen}` | {r.fault_status} | {after} | {r.left} | {rerun} "
            f"| {r.lost} | {r.equal} |"
        )
    return "\n".join(lines)
