"""Faults that end a run with one line naming the file and the problem, not a traceback.

They live apart from the code that raises them so that the command line can catch them
without importing the trainer.
"""

from __future__ import annotations


class RunError(RuntimeError):
    """A run that cannot go on; what was written before it is intact."""


class CheckpointError(RunError):
    """No checkpoint of a run folder can be resumed from."""


class NonFiniteError(RunError):
    """Training produced a NaN or infinite loss or weight; the run stops before saving it."""


class WriteError(OSError):
    """A file could not be written (no space, no permission); nothing half-written is left."""
