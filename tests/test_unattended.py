"""Unattended runs: one process per run folder, logs fit for files, quiet runs.

The stop signals' rows (SIGTERM, SIGINT, SIGUSR1 with --requeue, a second run, a stale lock)
are scenarios of benchmarks/faults.py, checked in tests/test_faults.py.
"""

import io
import json
import logging
import os
import re
import socket
import subprocess
import sys
import time

import numpy as np
import pytest
from tqdm import tqdm

import splitbrain.progress
from splitbrain.cli import _ConsoleHandler, main
from splitbrain.train.lock import LOCK_NAME, RunLock, RunLockedError, first_process

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
    path.write_text(json.dumps({"since": time.time(), "command": "splitbrain pretrain", **fields}))


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
    with caplog.at_level(logging.INFO, logger="splitbrain.train"), RunLock(lock.parent):
        assert json.loads(lock.read_text())["pid"] == os.getpid()
    assert f"taking over a stale lock (pid {pid} on this host is no longer running)" in caplog.text
    assert not lock.exists() and lock.parent.exists()  # the folder was there before


def test_a_reused_pid_is_not_mistaken_for_the_holder(tmp_path):
    lock = tmp_path / LOCK_NAME
    # our own pid, but a process start time that is not ours: the holder was another program
    _holder(lock, pid=os.getpid(), host=socket.gethostname(), start_ticks=1)
    if splitbrain.train.lock._start_ticks(os.getpid()) is None:
        pytest.skip("no /proc: process start times are not known here")
    with RunLock(tmp_path):
        assert json.loads(lock.read_text())["start_ticks"] != 1


def test_another_hosts_lock_is_stale_only_when_its_heartbeat_is(tmp_path, caplog):
    lock = tmp_path / LOCK_NAME
    _holder(lock, pid=1, host="node-elsewhere")
    with pytest.raises(RunLockedError, match="pid 1 on node-elsewhere .*heartbeat 0 s ago"):
        RunLock(tmp_path).__enter__()
    old = time.time() - splitbrain.train.lock.STALE_AFTER - 60
    os.utime(lock, (old, old))
    with caplog.at_level(logging.INFO, logger="splitbrain.train"), RunLock(tmp_path):
        pass
    assert "its heartbeat from node-elsewhere is 36" in caplog.text  # 360 s, give or take


def test_an_unreadable_lock_file_is_taken_over(tmp_path, caplog):
    (tmp_path / LOCK_NAME).write_text("{half a")
    old = time.time() - 10
    os.utime(tmp_path / LOCK_NAME, (old, old))
    with caplog.at_level(logging.INFO, logger="splitbrain.train"), RunLock(tmp_path):
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


def test_a_redirected_log_has_plain_progress_lines_at_a_bounded_rate(
    tmp_path, tiny, capsys, monkeypatch
):
    monkeypatch.setattr(splitbrain.progress, "INTERVAL", 0.2)
    started = time.monotonic()
    assert main(_pretrain(tiny, tmp_path / "run", 40)) == 0
    seconds = time.monotonic() - started
    captured = capsys.readouterr()
    log = captured.out + captured.err
    assert "\r" not in log
    progress = [line for line in log.splitlines() if line.startswith("step ")]
    assert progress and all(_PROGRESS.match(line) for line in progress), progress
    assert progress[-1].startswith("step 40/40 (100%)")
    assert len(progress) <= seconds / 0.2 + 2  # one line an interval, and the last
    # Lightning's own lines are replaced by one line of ours
    for lightning in ("GPU available", "TPU available", "max_steps", "Restoring states"):
        assert lightning not in log
    assert "training on 1 CPU device" in captured.out
    assert len(log) < 1500 + 80 * len(progress)


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
