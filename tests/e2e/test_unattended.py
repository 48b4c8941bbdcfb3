"""Unattended runs: one process per run folder, logs fit for files, quiet runs.

The stop signals' rows (SIGTERM, SIGINT, SIGUSR1 with --requeue, a second run, a stale lock)
are scenarios of tests/fault_scenarios.py, checked in tests/e2e/test_faults.py.
"""

import io
import json
import logging
import os
import pickle
import re
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pytest
import torch
from torch.utils.data import DataLoader
from tqdm import tqdm

import splitbrain.progress
from splitbrain.cli import _ConsoleHandler, main
from splitbrain.errors import Interrupted, RunError
from splitbrain.runs.lock import LOCK_NAME, RunLock, RunLockedError, first_process
from splitbrain.runs.signals import STOP_SIGNALS, StopOnSignal, ignore_stop_signals

CLI = [sys.executable, "-m", "splitbrain"]


@pytest.fixture
def tiny(tmp_path):
    data = tmp_path / "tiny.npz"
    rng = np.random.default_rng(2)
    np.savez(data, images=rng.integers(0, 256, (32, 32, 32, 3), dtype=np.uint8))
    return data


def _pretrain(data, out, steps: int, *extra: str) -> list[str]:
    return ["pretrain", "--data", f"npz:{data}", "--preset", "small", "--width", "0.125",
            "--batch-size", "8", "--steps", str(steps), "--workers", "0", "--out", str(out),
            *extra]  # fmt: skip


def _dead_pid() -> int:
    process = subprocess.Popen(["true"])
    process.wait()
    return process.pid


def _holder(path, **fields) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    lock = {"since": time.time(), "command": "splitbrain pretrain", "token": "theirs", **fields}
    path.write_text(json.dumps(lock))


# ------------------------------------------------------------------ the lock


def test_a_second_process_is_refused_naming_the_holder(tmp_path, tiny):
    out = tmp_path / "run"
    with RunLock(out):
        second = subprocess.run(
            [*CLI, *_pretrain(tiny, out, 2)], capture_output=True, text=True, timeout=300
        )
        assert sorted(p.name for p in out.iterdir()) == [LOCK_NAME]  # it wrote nothing
    assert second.returncode == 1
    lines = second.stderr.strip().splitlines()
    assert len(lines) == 1, second.stderr
    assert lines[0].startswith(f"splitbrain: error: {out} is in use by pid {os.getpid()} on ")
    assert socket.gethostname() in lines[0] and " UTC (" in lines[0]
    assert f"delete {out / LOCK_NAME})" in lines[0]
    assert not out.exists()  # released; the folder it made, empty, removed


def test_the_same_process_cannot_take_its_own_held_folder_twice(tmp_path):
    with RunLock(tmp_path / "run"), pytest.raises(RunLockedError, match="is in use by pid"):
        RunLock(tmp_path / "run").__enter__()


def test_a_dead_holder_on_this_host_is_taken_over_with_one_line(tmp_path, caplog):
    lock = tmp_path / "run" / LOCK_NAME
    pid = _dead_pid()
    _holder(lock, pid=pid, host=socket.gethostname())
    with caplog.at_level(logging.INFO, logger="splitbrain.runs"), RunLock(lock.parent):
        assert json.loads(lock.read_text())["pid"] == os.getpid()
    assert f"taking over a stale lock (pid {pid} on this host is no longer running)" in caplog.text
    assert not lock.exists() and lock.parent.exists()  # the folder was there before


def test_a_reused_pid_is_not_mistaken_for_the_holder(tmp_path):
    lock = tmp_path / LOCK_NAME
    # our own pid, but a process start time that is not ours: the holder was another program
    _holder(lock, pid=os.getpid(), host=socket.gethostname(), start_ticks=1)
    if splitbrain.runs.lock._start_ticks(os.getpid()) is None:
        pytest.skip("no /proc: process start times are not known here")
    with RunLock(tmp_path):
        assert json.loads(lock.read_text())["start_ticks"] != 1


def test_another_hosts_lock_is_stale_only_when_its_heartbeat_is(tmp_path, caplog):
    lock = tmp_path / LOCK_NAME
    _holder(lock, pid=1, host="node-elsewhere")
    with pytest.raises(RunLockedError, match="pid 1 on node-elsewhere .*heartbeat 0 s ago"):
        RunLock(tmp_path).__enter__()
    old = time.time() - splitbrain.runs.lock.STALE_AFTER - 60
    os.utime(lock, (old, old))
    with caplog.at_level(logging.INFO, logger="splitbrain.runs"), RunLock(tmp_path):
        pass
    assert "its heartbeat from node-elsewhere is 36" in caplog.text  # 360 s, give or take


def test_an_unreadable_lock_file_is_taken_over(tmp_path, caplog):
    (tmp_path / LOCK_NAME).write_text("{half a")
    old = time.time() - 10
    os.utime(tmp_path / LOCK_NAME, (old, old))
    with caplog.at_level(logging.INFO, logger="splitbrain.runs"), RunLock(tmp_path):
        pass
    assert "the lock file is unreadable" in caplog.text


def test_a_holder_whose_lock_was_taken_over_notices(tmp_path, caplog):
    with RunLock(tmp_path, heartbeat=0.05) as lock:
        _holder(tmp_path / LOCK_NAME, pid=1, host="node-elsewhere")  # a successor's lock
        deadline = time.time() + 10
        while not lock.lost and time.time() < deadline:
            time.sleep(0.02)
        assert lock.lost
    assert json.loads((tmp_path / LOCK_NAME).read_text())["host"] == "node-elsewhere"  # kept
    assert "another process took this run folder over" in caplog.text


def test_only_the_first_process_of_a_job_takes_the_lock(monkeypatch):
    for name in ("RANK", "LOCAL_RANK", "NODE_RANK", "GROUP_RANK", "SLURM_PROCID"):
        monkeypatch.delenv(name, raising=False)
    assert first_process()
    monkeypatch.setenv("SLURM_PROCID", "0")
    monkeypatch.setenv("LOCAL_RANK", "0")
    assert first_process()
    monkeypatch.setenv("NODE_RANK", "1")  # Lightning's launcher, second node
    assert not first_process()


# ------------------------------------------------------------------ logs


_PROGRESS = re.compile(r"^step \d+/40 \(\d+%\), [\d.]+ images/s, loss [\d.]+, \S+ left$")
#: A run with its output redirected to a file, progress every 0.2 s instead of 30 s.
_REDIRECTED = (
    "import sys, splitbrain.progress\n"
    "splitbrain.progress.INTERVAL = 0.2\n"
    "from splitbrain.cli import entry_point\n"
    "entry_point()\n"
)
#: The same run through the library: Lightning's own lines are not the library's to hide.
_LIBRARY = (
    "import sys\n"
    "from splitbrain.cli.pretrain import config_from_args\n"
    "from splitbrain.cli import build_parser\n"
    "from splitbrain.train import pretrain\n"
    "pretrain(config_from_args(build_parser().parse_args(sys.argv[1:])))\n"
)


def _redirected(program: str, argv: list[str], log) -> float:
    """Run ``program`` with ``argv`` and its output in the file ``log``; its seconds."""
    started = time.monotonic()
    with open(log, "w") as out:
        subprocess.run([sys.executable, "-c", program, *argv], stdout=out, stderr=out,
                       check=True, timeout=300)  # fmt: skip
    return time.monotonic() - started


def test_a_redirected_log_has_plain_progress_lines_at_a_bounded_rate(tmp_path, tiny):
    seconds = _redirected(_REDIRECTED, _pretrain(tiny, tmp_path / "run", 40), tmp_path / "log")
    log = (tmp_path / "log").read_text()
    assert "\r" not in log
    progress = [line for line in log.splitlines() if line.startswith("step ")]
    assert progress and all(_PROGRESS.match(line) for line in progress), progress
    assert progress[-1].startswith("step 40/40 (100%)")
    assert len(progress) <= seconds / 0.2 + 2  # one line an interval, and the last
    assert len(log) < 1500 + 80 * len(progress)
    # Lightning's own lines are replaced by one line of ours ...
    assert "training on 1 CPU device" in log
    for lightning in ("GPU available", "TPU available", "max_steps"):
        assert lightning not in log
    # ... which the same run through the library, without the command line, does show
    _redirected(_LIBRARY, _pretrain(tiny, tmp_path / "library", 4), tmp_path / "library.log")
    library = (tmp_path / "library.log").read_text()
    assert "GPU available" in library and "max_steps=4" in library


def test_quiet_prints_the_final_summary_and_errors_only(tmp_path, tiny, capsys):
    out = tmp_path / "run"
    assert main([*_pretrain(tiny, out, 2), "--quiet"]) == 0
    captured = capsys.readouterr()
    assert captured.err == ""
    assert captured.out.splitlines() == [
        f"colorizations: {out / 'colorizations.png'}",
        f"weights: {out / 'weights.safetensors'}",
        f"logs: {out / 'tensorboard'} (tensorboard --logdir {out})",
        f"checkpoints: {out / 'checkpoints'}",
    ]
    assert main([*_pretrain(tiny, out, 2), "--quiet", "--seed", "1"]) == 1
    assert "holds a run made with other settings" in capsys.readouterr().err


def test_a_message_never_lands_on_a_progress_bars_line(monkeypatch):
    terminal = io.StringIO()
    monkeypatch.setattr(sys, "stdout", terminal)
    monkeypatch.setattr(sys, "stderr", terminal)
    handler = _ConsoleHandler()
    with tqdm(total=10, desc="scanning", file=terminal) as bar:
        bar.update(3)
        record = logging.LogRecord("splitbrain.data", logging.WARNING, "", 0, "skipping x.jpg: "
                                   "truncated", None, None)  # fmt: skip
        handler.emit(record)
    text = terminal.getvalue()
    before = text[: text.index("skipping x.jpg")]
    assert before.endswith("\r")  # the bar's line was cleared first, not glued onto
    assert "skipping x.jpg: truncated\n" in text


def test_bars_on_a_terminal_and_lines_elsewhere_both_on_stdout(capsys, monkeypatch, caplog):
    monkeypatch.setattr(splitbrain.progress, "to_terminal", lambda: True)
    for _ in splitbrain.progress.track(range(3), desc="scanning"):
        pass
    captured = capsys.readouterr()
    assert "scanning" in captured.out and captured.err == ""
    monkeypatch.setattr(splitbrain.progress, "to_terminal", lambda: False)
    monkeypatch.setattr(splitbrain.progress, "INTERVAL", 0.0)
    with caplog.at_level(logging.INFO, logger="splitbrain.progress"):
        for _ in splitbrain.progress.track(range(4), desc="scanning", unit="img"):
            pass
    lines = [r.getMessage() for r in caplog.records]
    assert lines[0].startswith("scanning: 1/4 img (25%), ") and lines[0].endswith(" left")
    assert lines[-1].startswith("scanning: 4/4 img (100%)")


def test_the_heartbeat_makes_a_deleted_lock_again(tmp_path):
    with RunLock(tmp_path, heartbeat=0.05) as lock:
        mine = (tmp_path / LOCK_NAME).read_text()
        (tmp_path / LOCK_NAME).unlink()
        deadline = time.time() + 10
        while not (tmp_path / LOCK_NAME).exists() and time.time() < deadline:
            time.sleep(0.02)
        assert (tmp_path / LOCK_NAME).read_text() == mine and not lock.lost


def test_an_earlier_run_of_the_same_slurm_job_left_a_stale_lock(tmp_path, monkeypatch, caplog):
    # a requeued job, restarted on another node while its killed first run's lock is fresh
    _holder(tmp_path / LOCK_NAME, pid=1, host="node-a", machine="node-a/boot/1", slurm="77:0")
    monkeypatch.setenv("SLURM_JOB_ID", "77")
    monkeypatch.setenv("SLURM_RESTART_COUNT", "1")
    with caplog.at_level(logging.INFO, logger="splitbrain.runs"), RunLock(tmp_path):
        pass
    assert "left by an earlier run of SLURM job 77" in caplog.text
    monkeypatch.setenv("SLURM_JOB_ID", "78")  # another job's fresh lock is its own
    _holder(tmp_path / LOCK_NAME, pid=1, host="node-a", machine="node-a/boot/1", slurm="77:0")
    with pytest.raises(RunLockedError):
        RunLock(tmp_path).__enter__()


def test_a_namesake_machine_is_judged_by_the_heartbeat_not_the_pid(tmp_path):
    # the same host name, another boot or pid namespace (a container): its pid means nothing here
    machine = f"{socket.gethostname()}/another-boot/1"
    _holder(tmp_path / LOCK_NAME, pid=_dead_pid(), host=socket.gethostname(), machine=machine)
    with pytest.raises(RunLockedError, match="heartbeat 0 s ago"):
        RunLock(tmp_path).__enter__()


# ------------------------------------------------------------------ signals, in parts


class _Strategy:
    """Another rank's code in the reduction: what it got, max with ours."""

    def __init__(self, other: int) -> None:
        self.other = other

    def reduce(self, tensor, reduce_op):
        assert reduce_op == "max"
        return tensor.clamp(min=self.other)


class _Trainer:
    def __init__(self, other: int) -> None:
        self.world_size, self.global_step, self.max_steps = 2, 3, 6
        self.strategy, self.should_stop = _Strategy(other), False


class _Checkpoints:
    folder = Path("run/checkpoints")

    def __init__(self) -> None:
        self.saved: list[int] = []

    def save(self, trainer, module) -> None:
        self.saved.append(trainer.global_step)


def test_every_rank_stops_at_the_same_step_with_the_same_outcome():
    module = torch.nn.Linear(1, 1)
    module.device = torch.device("cpu")
    # this rank got nothing, another SIGUSR1: it writes its part of the checkpoint and stops
    checkpoints = _Checkpoints()
    stop = StopOnSignal(checkpoints)
    trainer = _Trainer(other=int(signal.SIGUSR1))
    stop.on_train_batch_end(trainer, module, None, None, 0)
    assert trainer.should_stop and checkpoints.saved == [3] and stop.signal == signal.SIGUSR1
    assert stop.interrupted(6, requeue=False).exit_code == 138
    # rank 0's lock was taken over: every rank stops with the same error, none saves
    checkpoints = _Checkpoints()
    stop = StopOnSignal(checkpoints)
    with pytest.raises(RunError, match="another process took this run folder over"):
        stop.on_train_batch_end(_Trainer(other=255), module, None, None, 0)
    assert checkpoints.saved == []
    # a signal during the last step stops nothing: the run ends there with its weights
    stop = StopOnSignal(checkpoints)
    trainer = _Trainer(other=int(signal.SIGTERM))
    trainer.global_step = 6
    stop.on_train_batch_end(trainer, module, None, None, 0)
    assert not trainer.should_stop and stop.step is None


def test_signals_keep_their_handlers_when_not_called_from_the_main_thread():
    before = {s: signal.getsignal(s) for s in STOP_SIGNALS}
    seen = {}

    def enter() -> None:
        with StopOnSignal(_Checkpoints()) as stop:
            seen["installed"] = dict(stop._previous)

    thread = threading.Thread(target=enter)
    thread.start()
    thread.join()
    assert seen["installed"] == {} and {s: signal.getsignal(s) for s in STOP_SIGNALS} == before


def test_an_interruption_crosses_process_boundaries():
    error = pickle.loads(pickle.dumps(Interrupted(signal.SIGTERM, "at step 3 of 6: checkpoint x")))
    assert str(error) == "interrupted by SIGTERM at step 3 of 6: checkpoint x"
    assert error.exit_code == 143


_HOLDS_A_LOADER_AND_FAILS = """
import torch
from splitbrain.runs.stream import make_loader
class Zeros(torch.utils.data.Dataset):
    def __len__(self):
        return 100
    def __getitem__(self, index):
        return torch.zeros(3), 0
batches = iter(make_loader(Zeros(), 4, 20, workers=2))
next(batches)
print(*(w.pid for w in batches._workers), flush=True)
raise RuntimeError("an error while the loader is alive")
"""


def test_a_process_that_fails_holding_a_loader_ends_and_its_workers_with_it():
    """Its workers ignore stop signals; the exit ends them anyway (it used to wait forever)."""
    started = time.monotonic()
    done = subprocess.run(
        [sys.executable, "-c", _HOLDS_A_LOADER_AND_FAILS], capture_output=True, text=True,
        timeout=120, start_new_session=True,
    )  # fmt: skip
    assert time.monotonic() - started < 60 and done.returncode == 1
    assert done.stderr.strip().endswith("RuntimeError: an error while the loader is alive")
    assert "atexit" not in done.stderr  # no worker reported as failed on the way out
    for pid in map(int, done.stdout.split()):
        with pytest.raises(ProcessLookupError):
            os.kill(pid, 0)


def test_loader_workers_ignore_stop_signals():
    batches = iter(DataLoader(range(100), num_workers=1, worker_init_fn=ignore_stop_signals))
    assert next(batches).tolist() == [0]
    (worker,) = batches._workers
    for signum in STOP_SIGNALS:  # from another process (SLURM's step daemon, a terminal)
        kill = f"import os; os.kill({worker.pid}, {int(signum)})"
        subprocess.run([sys.executable, "-c", kill], check=True)
    time.sleep(0.5)
    assert worker.is_alive() and next(batches).tolist() == [1]
    del batches  # shut down as usual: by the loader, not by a signal
    worker.join(timeout=10)
    assert not worker.is_alive()
