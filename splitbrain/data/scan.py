"""scan_source: decode every item once before training, to skip bad ones and fail fast.

A run that meets a broken file at hour five should not crash, and a dataset that is mostly
broken should not train at all. The scan records each item's outcome in a BadImageLog (which
ImageDataset then uses to leave bad items out) and raises when too many are unusable.
"""

from __future__ import annotations

import logging
import multiprocessing
import os
import signal
from collections.abc import Iterator

from ..errors import literal
from ..progress import track
from .badlog import BadImageLog, count_listing
from .base import ImageSource
from .decode import SKIP_REASONS
from .errors import BadImage, DatasetError

logger = logging.getLogger("splitbrain.data")

CHUNK = 256
#: With a hint to give, a scan stops as soon as this many items are all too small.
EARLY = 20
#: Below this many files, starting worker processes costs more than it saves.
PARALLEL_FROM = 2000

_worker_source: ImageSource | None = None  # set in each scan worker process


def outcome(source: ImageSource, i: int, min_side: int) -> tuple[str | None, str]:
    """(None, a conversion or a skip reason; a detail) for item ``i`` of ``source``."""
    try:
        note, (height, width) = source.check(i)
    except BadImage as bad:
        return bad.reason, bad.detail
    if min(height, width) < min_side:
        return "too small", f"{height}x{width}, shorter side under {min_side}"
    return note, ""


def _init_worker(source: ImageSource) -> None:
    """A scan worker's start: the parent's signal handlers are not its own (a run's stop
    handler, inherited by fork, would print a traceback when the pool ends its workers with
    SIGTERM); a terminal's Ctrl-C is the parent's to handle."""
    global _worker_source
    _worker_source = source
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    signal.signal(signal.SIGINT, signal.SIG_IGN)


def _check(source: ImageSource, indices: range, min_side: int) -> list[tuple[int, str | None, str]]:
    return [(i, *outcome(source, i, min_side)) for i in indices]


def _check_in_worker(job: tuple[range, int]) -> list[tuple[int, str | None, str]]:
    return _check(_worker_source, *job)


def _outcomes(source: ImageSource, min_side: int, workers: int) -> Iterator[list]:
    """Chunks of (index, outcome, detail) in index order, decoded by ``workers`` processes."""
    jobs = [(range(s, min(s + CHUNK, len(source))), min_side) for s in range(0, len(source), CHUNK)]
    if workers <= 1:
        yield from (_check(source, *job) for job in jobs)
        return
    with multiprocessing.get_context().Pool(workers, _init_worker, (source,)) as pool:
        yield from pool.imap(_check_in_worker, jobs)


def scan_source(
    source: ImageSource,
    max_bad_fraction: float = 0.01,
    min_side: int = 1,
    workers: int | None = None,
    progress: bool = True,
    too_small_hint: tuple[str, str] | None = None,
) -> BadImageLog:
    """Decode every item of ``source``; return their outcomes, raise if too many are unusable.

    Items whose shorter side is under ``min_side`` count as unusable ("too small"); pass half
    the training crop. ``workers`` processes decode files (default: all cores for sources that
    decode files, none for in-memory ones). Raises DatasetError when more than
    ``max_bad_fraction`` of the items are unusable, and, with ``too_small_hint`` (the fix to
    name: a template naming one setting as ``{field}``, and that field), as soon as the first
    ``EARLY`` or more items checked are all too small.
    """
    log = BadImageLog()
    log.bind(source)
    if workers is None:
        workers = (os.cpu_count() or 1) if source.decodes_files else 1
    if len(source) < PARALLEL_FROM:
        workers = 1
    first: list[str] = []
    seen = too_small = 0
    desc = f"scanning {source.spec}"
    with track(total=len(source), desc=desc, unit="img", enabled=progress) as bar:
        for chunk in _outcomes(source, min_side, workers):
            bar.update(len(chunk))
            for i, result, detail in chunk:
                if result in SKIP_REASONS:
                    log.record(i, result, source.name(i), detail)
                    if len(first) < 5:
                        first.append(f"{source.name(i)}: {result}")
                else:
                    log.record(i, result)
                seen, too_small = seen + 1, too_small + (result == "too small")
            if too_small_hint and seen >= min(EARLY, len(source)) and too_small == seen:
                fix, setting = too_small_hint
                raise DatasetError(
                    literal(
                        f"{source.spec}: the first {seen:,} images are all too small (shorter "
                        f"side under {min_side} px, e.g. {first[0].split(': ')[0]}): "
                    )
                    + fix,
                    (setting,),
                )
    skipped = log.skipped
    n_bad = sum(skipped.values())
    if n_bad > max_bad_fraction * len(source):
        found = literal(f"{count_listing(skipped)}; first few: {'; '.join(first)}")
        raise DatasetError(
            f"{n_bad / len(source):.1%} of {len(source):,} images in {literal(source.spec)} "
            f"(split {source.split}) are unusable (limit {max_bad_fraction * 100:g}%): "
            f"{found}; to train on the rest anyway, raise {{max_bad_fraction}} "
            f"(now {max_bad_fraction:g})",
            ("max_bad_fraction",),
        )
    logger.info("%s (%s): %s", source.spec, source.split, log.summary())
    return log
