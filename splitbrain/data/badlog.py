"""BadImageLog: what happened to each item (fine, converted how, skipped why), across processes.

The outcome of item i is one byte in a shared-memory tensor, so DataLoader worker processes
(forked or spawned) write into the same record the main process summarises, a failure seen in
several epochs counts once, and a scan's findings tell the dataset which items to leave out.
"""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import torch

from ..atomic import atomic_write
from .base import ImageSource, plural
from .decode import CONVERSIONS, SKIP_REASONS

logger = logging.getLogger("splitbrain.data")

_STATES = ("unchecked", "ok", *CONVERSIONS, *SKIP_REASONS)
_CODE = {state: code for code, state in enumerate(_STATES)}
_FIRST_SKIP = _CODE[SKIP_REASONS[0]]


def count_listing(counts: dict[str, int]) -> str:
    """E.g. "2 truncated, 1 empty"."""
    return ", ".join(f"{n:,} {what}" for what, n in counts.items())


class BadImageLog:
    """Per-item decode outcomes of one source; ``summary()`` is the line a run prints.

    The first ``LOGGED`` skipped items of each process are logged by name, the rest only
    counted (a folder of thousands of broken files must not bury the console);
    ``write_listing`` writes them all to a file.
    """

    LOGGED = 10

    def __init__(self) -> None:
        self.source: str | None = None
        self._state: torch.Tensor | None = None  # uint8 (N,) codes into _STATES, shared memory
        self._logged = 0

    def bind(self, source: ImageSource) -> None:
        """Size the record for ``source``; a log belongs to one source (one per dataset)."""
        key = f"{source.spec} split={source.split} n={len(source)}"
        if self._state is None:
            self.source = key
            self._state = torch.zeros(len(source), dtype=torch.uint8).share_memory_()
        elif key != self.source:
            raise ValueError(f"this BadImageLog records {self.source}, not {key}: one per source")

    def record(self, i: int, outcome: str | None, name: str = "", detail: str = "") -> None:
        """Note item ``i``: None (was RGB), a conversion, or a skip reason (logged, by name)."""
        if self._state is None:
            raise RuntimeError("BadImageLog.record before bind(source)")
        state = "ok" if outcome is None else outcome
        self._state[i] = _CODE[state]
        if state in SKIP_REASONS:
            self._logged += 1
            if self._logged <= self.LOGGED:
                why = f" ({detail})" if detail else ""
                logger.warning("skipping %s: %s%s", name or i, state, why)
            elif self._logged == self.LOGGED + 1:
                logger.warning("skipping more items: counted, not listed here")

    def _counts(self) -> dict[str, int]:
        if self._state is None:
            return {}
        counts = np.bincount(self._state.numpy(), minlength=len(_STATES))
        return {state: int(n) for state, n in zip(_STATES, counts, strict=True)}

    @staticmethod
    def _ranked(counts: dict[str, int], states: tuple[str, ...]) -> dict[str, int]:
        """Nonzero counts of ``states``, most frequent first (ties in table order)."""
        ranked = sorted((s for s in states if counts.get(s)), key=lambda s: -counts[s])
        return {s: counts[s] for s in ranked}

    @property
    def checked(self) -> int:
        """How many items have been decoded (or found bad) so far."""
        return sum(n for state, n in self._counts().items() if state != "unchecked")

    @property
    def skipped(self) -> dict[str, int]:
        """Skipped items per reason."""
        return self._ranked(self._counts(), SKIP_REASONS)

    @property
    def converted(self) -> dict[str, int]:
        """Items converted to RGB per kind of conversion."""
        return self._ranked(self._counts(), CONVERSIONS)

    def bad_indices(self) -> np.ndarray:
        """Indices of the items found unusable so far."""
        if self._state is None:
            return np.zeros(0, dtype=np.int64)
        return np.flatnonzero(self._state.numpy() >= _FIRST_SKIP)

    def good_indices(self) -> np.ndarray:
        """Indices of every item not found unusable (unchecked ones included)."""
        if self._state is None:
            raise RuntimeError("BadImageLog.good_indices before bind(source)")
        return np.flatnonzero(self._state.numpy() < _FIRST_SKIP)

    def write_listing(self, source: ImageSource, path: str | Path) -> Path | None:
        """Every item skipped so far, one "name<TAB>reason" line each, into ``path`` (None,
        and no file, when none was skipped)."""
        bad = self.bad_indices()
        if not len(bad):
            return None
        lines = [f"{source.name(int(i))}\t{_STATES[self._state[i]]}" for i in bad]
        return atomic_write(path, lambda tmp: Path(tmp).write_text("\n".join(lines) + "\n"))

    def summary(self) -> str:
        """E.g. "skipped 3 of 1,000 images: 2 truncated, 1 empty; converted 4 (4 palette)"."""
        skipped, converted = self.skipped, self.converted
        line = f"skipped {sum(skipped.values()):,} of {plural(self.checked, 'image')}"
        if skipped:
            line += f": {count_listing(skipped)}"
        if converted:
            line += f"; converted {sum(converted.values()):,} ({count_listing(converted)})"
        return line

    def __repr__(self) -> str:
        return f"<BadImageLog {self.source}: {self.summary()}>"
