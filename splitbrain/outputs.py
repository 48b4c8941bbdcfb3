"""Outputs are never silently replaced: a command whose output is already there writes beside
it (``NAME-2``, ``NAME-3``, ...) and says so, unless told ``--overwrite``."""

from __future__ import annotations

import logging
from collections.abc import Callable
from pathlib import Path

log = logging.getLogger("splitbrain.outputs")


def keep_earlier(path: Path, overwrite: bool, taken: Callable[[Path], bool], what: str) -> Path:
    """``path``, or, when ``taken(path)`` says it holds an earlier ``what`` and not
    ``overwrite``, the first ``NAME-K`` beside it (before any suffix: ``f-2.npz``) that does
    not, in one log line."""
    if overwrite or not taken(path):
        return path
    k = 2
    while taken(beside := path.with_name(f"{path.stem}-{k}{path.suffix}")):
        k += 1
    log.info("%s holds an earlier %s; this one goes to %s (--overwrite replaces it)",
             path, what, beside)  # fmt: skip
    return beside
