"""Faults that end a run with one line naming the file and the problem, not a traceback.

They live apart from the code that raises them so that the command line can catch them
without importing the trainer.
"""

from __future__ import annotations

import os
import signal


class SettingError(ValueError):
    """A setting that cannot work, named as its configuration field (``setting``): a notebook
    user reads ``weights: ...``, the command line shows the flag, ``--weights: ...``."""

    def __init__(self, setting: str, problem: str) -> None:
        super().__init__(f"{setting}: {problem}")
        self.setting, self.problem = setting, problem


class RunError(RuntimeError):
    """A run that cannot go on; what was written before it is intact."""


class CheckpointError(RunError):
    """No checkpoint of a run folder can be resumed from."""


class NonFiniteError(RunError):
    """Training produced a NaN or infinite loss or weight; the run stops before saving it."""


class RunFolderError(RunError):
    """A file of a run folder could not be written; the message says what to do."""


class WriteError(OSError):
    """A file could not be written (no space, no permission); nothing half-written is left.

    Raised as ``WriteError.of(path, error)``: the OSError's number and reason, and the file
    (``filename``), in one line."""

    @classmethod
    def of(cls, path: str | os.PathLike, error: OSError) -> WriteError:
        return cls(error.errno, error.strerror or str(error), os.fspath(path))

    def __str__(self) -> str:
        return f"{self.filename}: could not write ({self.strerror})"


class Interrupted(BaseException):
    """A stop signal ended the run (SIGTERM, SIGINT, SIGUSR1); the message says what was saved.

    A BaseException, like KeyboardInterrupt, so that no ``except Exception`` on the way out
    swallows it. ``exit_code`` is the shell's convention, 128 + the signal's number: 130 for
    Ctrl-C, 143 for SIGTERM, 138 for SIGUSR1.
    """

    def __init__(self, signal: signal.Signals, detail: str) -> None:
        super().__init__(signal, detail)  # the arguments, so that it pickles across processes
        self.signal, self.detail = signal, detail
        self.exit_code = 128 + int(signal)

    def __str__(self) -> str:
        return f"interrupted by {self.signal.name} {self.detail}"
