"""The two errors of the data package, kept apart so every module can raise them."""

from __future__ import annotations

from ..errors import NamesSettings


class DatasetError(NamesSettings, RuntimeError):
    """A dataset that cannot be used as asked: missing, malformed, offline, or mostly bad.
    A message that names a setting is a template (``NamesSettings``): ``DatasetError("raise
    {max_bad_fraction}", ("max_bad_fraction",))``."""


class BadImage(DatasetError):
    """One item that cannot be decoded; the run skips it and counts it under ``reason``."""

    def __init__(self, path: str, reason: str, detail: str = "") -> None:
        self.path = path
        self.reason = reason
        self.detail = detail
        super().__init__(f"{path}: {reason}" + (f" ({detail})" if detail else ""))

    def __reduce__(self):  # picklable across DataLoader worker processes
        return type(self), (self.path, self.reason, self.detail)
