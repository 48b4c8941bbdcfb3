"""One process per run folder: ``run.lock`` names its holder, and a second run stops at once.

Two runs writing one folder would interleave checkpoints and TensorBoard files and resume from
each other's steps. The lock is a file created with ``O_CREAT | O_EXCL``, atomic on local file
systems and on NFS v3 and later, holding the holder's pid, host, start time and command. While
the run lives a thread touches it every ``HEARTBEAT`` seconds. A lock is stale, and taken over
with one log line, when its holder is gone:

- on this machine, when its pid no longer runs (or runs another program: the process start
  time recorded beside the pid no longer matches, so a reused pid is not mistaken for the
  holder). "This machine" is the host name, the boot and the pid namespace together: two
  containers that share a host name are two machines;
- left by an earlier run of the same SLURM job (a requeued job whose first run was killed
  before it could release the lock);
- on another machine (a folder on a shared file system), when its heartbeat is older than
  ``STALE_AFTER``, measured by the file system's own clock (a file touched beside it), so
  hosts whose clocks disagree do not misjudge each other.

A holder whose lock was taken over (it was suspended longer than ``STALE_AFTER``) notices at
its next heartbeat and stops the run (``lost``), instead of writing beside its successor.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import shlex
import socket
import sys
import threading
import time
import uuid
from datetime import datetime, timezone
from pathlib import Path

from ..errors import NamesSettings, RunError, WriteError, literal
from ..jsontext import json_text

log = logging.getLogger("splitbrain.runs")

LOCK_NAME = "run.lock"
HEARTBEAT = 30.0  # seconds between touches of a held lock
STALE_AFTER = 300.0  # seconds without a heartbeat before another host's lock counts as stale
_RANK_VARIABLES = ("RANK", "LOCAL_RANK", "NODE_RANK", "GROUP_RANK", "SLURM_PROCID")


class RunLockedError(NamesSettings, RunError):
    """The run folder is held by a live process; the message names the setting ``out``."""


def first_process() -> bool:
    """Whether this is the job's first process (global rank 0), from the variables that
    torchrun, SLURM and Lightning's launcher set before a process starts: the other ranks of a
    data-parallel run share the folder with it and take no lock."""
    return all(os.environ.get(name, "0") == "0" for name in _RANK_VARIABLES)


def _start_ticks(pid: int) -> int | None:
    """When process ``pid`` started (clock ticks since boot, Linux), None where unknown."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    return int(stat.rsplit(")", 1)[1].split()[19])  # field 22; the name may hold spaces


def _machine() -> str:
    """This machine for pids: host name, boot and pid namespace (what Linux says of them)."""
    parts = [socket.gethostname()]
    with contextlib.suppress(OSError):
        parts.append(Path("/proc/sys/kernel/random/boot_id").read_text().strip())
        parts.append(str(os.stat("/proc/self/ns/pid").st_ino))
    return "/".join(parts)


def _slurm_run() -> str | None:
    """This run of a SLURM job: its id and how often it was requeued, None outside SLURM."""
    job = os.environ.get("SLURM_JOB_ID")
    return f"{job}:{os.environ.get('SLURM_RESTART_COUNT', '0')}" if job else None


def _running(pid: int, start_ticks: int | None) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # another user's live process
        pass
    return start_ticks is None or _start_ticks(pid) in (None, start_ticks)


def _file_system_now(folder: Path) -> float:
    """The current time as the file system holding ``folder`` stamps files."""
    probe = folder / f".run.lock.clock-{os.getpid()}"
    try:
        probe.touch()
        return probe.stat().st_mtime
    finally:
        probe.unlink(missing_ok=True)


def _since(timestamp: float) -> str:
    return datetime.fromtimestamp(timestamp, timezone.utc).strftime("%Y-%m-%d %H:%M:%S UTC")


class RunLock:
    """``with RunLock(folder):`` holds ``folder/run.lock`` for the block (RunLockedError when
    a live process holds it). A folder this lock created and that stays empty is removed again
    on release."""

    def __init__(self, folder: str | os.PathLike, heartbeat: float = HEARTBEAT) -> None:
        self.folder = Path(folder)
        self.path = self.folder / LOCK_NAME
        self.heartbeat = heartbeat
        self.lost = False  # set when another process took the lock over
        self._created_folder = False
        self._mine: dict | None = None
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def __enter__(self) -> RunLock:
        self._created_folder = not self.folder.exists()
        try:
            self.folder.mkdir(parents=True, exist_ok=True)
        except OSError as error:
            raise WriteError.of(self.folder, error) from None
        self._mine = {
            "pid": os.getpid(),
            "host": socket.gethostname(),
            "machine": _machine(),
            "slurm": _slurm_run(),
            "since": time.time(),
            "start_ticks": _start_ticks(os.getpid()),
            "command": shlex.join([Path(sys.argv[0]).name, *sys.argv[1:]]),
            "token": uuid.uuid4().hex,
        }
        for _ in range(50):  # a takeover that loses a race, or a lock being written, retries
            if self._create():
                break
            holder = self._read()
            if holder == {} and self._age() < 1:  # created this instant, content not yet written
                time.sleep(0.1)
                continue
            if holder is not None:
                reason = self._stale(holder)
                if reason is None:
                    raise RunLockedError(self._refusal(holder), ("out",))
                self._take_over(holder, reason)
        else:
            raise RunLockedError(f"{self.path}: could not take the lock (others keep taking it)")
        self._thread = threading.Thread(target=self._beat, name="run-lock", daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
        if self._read() == self._mine:
            self.path.unlink(missing_ok=True)
        if self._created_folder:
            with contextlib.suppress(OSError):  # not empty: the run wrote something
                self.folder.rmdir()

    def _create(self) -> bool:
        try:
            fd = os.open(self.path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
        except FileExistsError:
            return False
        except OSError as error:  # a read-only folder, no space
            raise WriteError.of(self.path, error) from None
        with os.fdopen(fd, "w") as file:
            file.write(json_text(self._mine))
        return True

    def _read(self, path: Path | None = None) -> dict | None:
        """The lock's content; {} for one that is unreadable or half written; None if absent."""
        try:
            text = (path or self.path).read_text()
        except FileNotFoundError:
            return None
        try:
            content = json.loads(text)
        except ValueError:
            return {}
        return content if isinstance(content, dict) else {}

    def _stale(self, holder: dict) -> str | None:
        """Why ``holder``'s lock may be taken over, or None while it holds the folder."""
        pid, host = holder.get("pid"), holder.get("host")
        if not isinstance(pid, int) or not isinstance(host, str):
            return "the lock file is unreadable"
        ours, theirs = self._mine["slurm"], holder.get("slurm")
        if ours and theirs and theirs != ours and theirs.split(":")[0] == ours.split(":")[0]:
            return f"it was left by an earlier run of SLURM job {ours.split(':')[0]}"
        if "machine" in holder:
            same_machine = holder["machine"] == self._mine["machine"]
        else:  # a lock that names its host alone
            same_machine = host == socket.gethostname()
        if same_machine:
            running = _running(pid, holder.get("start_ticks"))
            return None if running else f"pid {pid} on this host is no longer running"
        age = self._age()
        if age > STALE_AFTER:
            return f"its heartbeat from {host} is {age:.0f} s old (stale after {STALE_AFTER:.0f})"
        return None

    def _age(self) -> float:
        """Seconds since the lock file was last touched, by the file system's clock."""
        try:
            return _file_system_now(self.folder) - self.path.stat().st_mtime
        except FileNotFoundError:
            return 0.0

    def _take_over(self, holder: dict, reason: str) -> None:
        """Remove ``holder``'s stale lock, unless another process replaced it meanwhile."""
        aside = self.folder / f".{LOCK_NAME}.stale-{self._mine['token']}"
        try:
            os.rename(self.path, aside)
        except FileNotFoundError:
            return  # someone else removed it; try to create ours
        if self._read(aside) != holder:  # a fresh lock, taken between our read and rename
            with contextlib.suppress(FileExistsError):
                os.link(aside, self.path)
            aside.unlink(missing_ok=True)
            return
        aside.unlink(missing_ok=True)
        log.info("%s: taking over a stale lock (%s)", self.path, reason)

    def _refusal(self, holder: dict) -> str:
        pid, host = holder.get("pid"), holder.get("host")
        since = _since(holder["since"]) if isinstance(holder.get("since"), int | float) else "?"
        command = holder.get("command", "?")
        return (
            literal(
                f"{self.folder} is in use by pid {pid} on {host} since {since} ({command}; "
                f"heartbeat {self._age():.0f} s ago): wait for it to end or stop it, or choose "
                "another "
            )
            + "{out}"
            + literal(f" (if that process is gone, delete {self.path})")
        )

    def _beat(self) -> None:
        """Touch the lock every ``heartbeat`` seconds; a transient error of the file system
        skips a beat, a lock gone missing is made again, another process's lock sets ``lost``."""
        while not self._stop.wait(self.heartbeat):
            try:
                holder = self._read()
                if holder is None:  # deleted by hand, or between a takeover's rename and link
                    self._create()
                elif holder.get("token") not in (None, self._mine["token"]):
                    self.lost = True
                    log.error(
                        "%s: another process took this run folder over while this one was "
                        "suspended; stopping at the end of this step", self.path,
                    )  # fmt: skip
                    return
                elif holder:
                    os.utime(self.path)
            except (OSError, WriteError):
                continue
