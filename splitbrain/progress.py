"""Progress that suits where the output goes: a tqdm bar on a terminal, and when standard
output is a file or a pipe, one plain line every ``INTERVAL`` seconds (a log of a long run
grows by a few lines a minute, never by carriage-return frames). Bars and lines go to standard
output, like the library's information messages.

``SUMMARY`` marks the log records of a command's final summary: ``--quiet`` shows only these
and errors.
"""

from __future__ import annotations

import logging
import sys
import time
from collections.abc import Iterable, Iterator

progress_log = logging.getLogger("splitbrain.progress")

INTERVAL = 30.0  # seconds between two plain progress lines
SUMMARY = {"summary": True}  # ``log.info(..., extra=SUMMARY)``: shown even with --quiet


def to_terminal() -> bool:
    """Whether standard output is a terminal (bars), not a file or a pipe (plain lines)."""
    return sys.stdout.isatty()


def default_interval() -> float:
    """``INTERVAL``, read when a display starts (a test may shorten it)."""
    return INTERVAL


def duration(seconds: float) -> str:
    """``1h02m``, ``3m05s``, ``42s``: a time left or taken, at a glance."""
    seconds = max(0, round(seconds))
    hours, rest = divmod(seconds, 3600)
    minutes, seconds = divmod(rest, 60)
    if hours:
        return f"{hours}h{minutes:02d}m"
    return f"{minutes}m{seconds:02d}s" if minutes else f"{seconds}s"


class ProgressLines:
    """The part of tqdm's interface this package uses (iteration, ``update``, ``close``, a
    context manager), written as a line of count, rate and time left every ``interval``
    seconds, and a last line at the end when any was written."""

    def __init__(
        self,
        iterable: Iterable | None = None,
        total: int | None = None,
        desc: str = "",
        unit: str = "it",
        interval: float | None = None,
    ) -> None:
        self.iterable = iterable
        self.total = total if total is not None else _length(iterable)
        self.desc, self.unit = desc, unit
        self.interval = default_interval() if interval is None else interval
        self.n = self.n_written = 0
        self.start = self.last = time.monotonic()

    def __iter__(self) -> Iterator:
        for item in self.iterable:
            yield item
            self.update()
        self.close()

    def __enter__(self) -> ProgressLines:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def update(self, n: int = 1) -> None:
        self.n += n
        if time.monotonic() - self.last >= self.interval:
            self._write()

    def close(self) -> None:
        if self.n_written and self.n_written != self.n:  # the end, unless just written
            self._write()

    def _write(self) -> None:
        now = time.monotonic()
        rate = self.n / max(now - self.start, 1e-9)
        if self.total:
            left = duration((self.total - self.n) / rate) if rate else "?"
            done = f"{self.n:,.0f}/{self.total:,.0f} {self.unit} ({self.n / self.total:.0%})"
            progress_log.info("%s: %s, %.1f %s/s, %s left", self.desc, done, rate, self.unit, left)
        else:
            count = f"{self.n:,.0f} {self.unit}"
            progress_log.info("%s: %s, %.1f %s/s", self.desc, count, rate, self.unit)
        self.last, self.n_written = now, self.n


def _length(iterable: Iterable | None) -> int | None:
    try:
        return len(iterable)  # type: ignore[arg-type]
    except TypeError:
        return None


def track(
    iterable: Iterable | None = None,
    *,
    total: int | None = None,
    desc: str = "",
    unit: str = "it",
    enabled: bool = True,
):
    """A progress display of ``iterable`` (or of ``update`` calls up to ``total``): a tqdm
    bar on a terminal, ``ProgressLines`` otherwise, a silent pass-through when not
    ``enabled``."""
    from tqdm import tqdm

    if not enabled or to_terminal():
        return tqdm(
            iterable, total=total, desc=desc, unit=unit, leave=False, disable=not enabled,
            file=sys.stdout, dynamic_ncols=True,
        )  # fmt: skip
    return ProgressLines(iterable, total, desc, unit)
