"""Faults that end a run with one line naming the file and the problem, not a traceback.

They live apart from the code that raises them so that the command line can catch them
without importing the trainer.
"""

from __future__ import annotations

import os
import signal
from collections.abc import Callable


class NamesSettings:
    """An error whose message names settings: by their configuration fields for a notebook
    user (``str``), by their flags on the command line (``message(flag)``), so that each is
    told about the names they used. ``template`` holds ``{field}`` where a setting is named
    (other braces doubled: ``literal``); a message that names no setting is shown as written."""

    def __init__(self, template: str, settings: tuple[str, ...] = ()) -> None:
        super().__init__(template)
        self.template, self.settings = template, tuple(settings)

    def message(self, name: Callable[[str], str]) -> str:
        if not self.settings:
            return self.template
        return self.template.format_map({s: name(s) for s in self.settings})

    def __str__(self) -> str:
        return self.message(str)


def literal(value: object) -> str:
    """``value`` as text that a ``NamesSettings`` template shows as it is."""
    return str(value).replace("{", "{{").replace("}", "}}")


class SettingError(NamesSettings, ValueError):
    """A setting that cannot work: ``setting`` (a configuration field), the ``value`` given
    (if one is said) and the ``problem``, where ``{setting}`` names the setting again
    (``SettingError("accelerator", "no GPU here; use {setting} cpu", "gpu")``)."""

    def __init__(self, setting: str, problem: str, value: object = None) -> None:
        self.setting, self.problem, self.value = setting, problem, value
        given = "" if value is None else f" {literal(value)}"
        template = f"{{{setting}}}{given}: " + problem.replace("{setting}", f"{{{setting}}}")
        super().__init__(template, (setting,))


class WeightsFileError(ValueError):
    """A file, folder or hub name that is not a readable splitbrain model."""


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
