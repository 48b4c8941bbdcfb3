"""A run folder's files that cannot be written end the run in one line: the file, the reason
and what to do. A full disk, a quota, a folder made read-only, removed or unmounted during the
run: the OSError of whichever write met it first (TensorBoard's log, a checkpoint, the settings,
the weights, the lock) becomes ``RunFolderError``, whatever raised it.

TensorBoard's log is a run folder file like the others, written by a thread of its own:
``TensorBoardLog`` closes it without raising once the run has failed, so that Lightning goes on
to shut the loader workers down and the error that failed the run is the one reported.
"""

from __future__ import annotations

import errno
import logging
import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from lightning.pytorch.loggers import TensorBoardLogger

from ..errors import RunFolderError, WriteError

log = logging.getLogger("splitbrain.runs")

#: What to do about the errors a write meets most, before running the same command again.
_REMEDIES = {
    errno.ENOSPC: "free space on its disk",
    errno.EDQUOT: "free space within the disk quota",
    errno.EACCES: "make {out} writable",
    errno.EPERM: "make {out} writable",
    errno.EROFS: "make {out} writable (its file system is read-only)",
}


def _inside(path: Path, folder: Path) -> bool:
    return Path(os.path.abspath(path)).is_relative_to(os.path.abspath(folder))


def explain(out: Path, error: OSError) -> str | None:
    """The line for ``error`` if it is about a file in the run folder ``out`` (None if not):
    the file, the reason, and what to do."""
    if error.filename is None:
        return None
    path = Path(os.fsdecode(error.filename))
    if not _inside(path, out):
        return None
    reason = error.strerror or str(error)
    problem = str(error) if isinstance(error, WriteError) else f"{path}: {reason}"
    if error.errno == errno.ENOENT and not out.is_dir():
        detail = "" if path == out else f" ({path}: {reason})"
        return (
            f"{out}: the run folder disappeared during the run{detail}; run the same "
            "command again: it resumes from the folder's newest checkpoint if the folder is back "
            "(a file system mounted again), and starts afresh if not"
        )
    remedy = _REMEDIES.get(error.errno, "make sure {out} can be written").format(out=out)
    again = "then run the same command again"
    try:
        if next(out.rglob("step-*.ckpt"), None) is not None:
            again += " to resume from its newest checkpoint"
    except OSError:  # the file system that failed the run may fail this too
        pass
    return f"{problem}: {remedy}, {again}"


def _causes(error: BaseException) -> Iterator[BaseException]:
    """``error`` and what caused it (Lightning re-raises a logger's OSError as a ValueError);
    not the context an error was raised ``from None`` to leave out."""
    seen: set[int] = set()
    while error is not None and id(error) not in seen:
        seen.add(id(error))
        yield error
        error = error.__cause__ or (None if error.__suppress_context__ else error.__context__)


@contextmanager
def run_folder_faults(out: str | os.PathLike) -> Iterator[None]:
    """Inside the block, an error caused by an OSError about a file in ``out`` is raised as
    ``RunFolderError`` with ``explain``'s line; other errors pass unchanged."""
    out = Path(out)
    try:
        yield
    except Exception as error:
        oserrors = (e for e in _causes(error) if isinstance(e, OSError))
        line = next(filter(None, (explain(out, e) for e in oserrors)), None)
        if line is None:
            raise
        log.debug("%s", line, exc_info=True)  # the traceback, for whoever turns debugging on
        raise RunFolderError(line) from None


class TensorBoardLog(TensorBoardLogger):
    """Lightning's TensorBoard logger, writing ``folder/tensorboard``. When a run fails,
    Lightning closes its loggers before its loaders: a log that cannot be written (often why the
    run failed) would raise again there, and the loader workers would never be shut down."""

    def __init__(self, folder: str | os.PathLike) -> None:
        super().__init__(folder, name="tensorboard", version="")

    def finalize(self, status: str) -> None:
        if status != "failed":
            super().finalize(status)
            return
        try:
            super().finalize(status)
        except Exception as error:  # OSError, or TensorFlow's own when it writes the files
            log.debug("%s: not closed after the run failed (%s)", self.log_dir, error)
