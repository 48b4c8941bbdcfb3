"""``python -m splitbrain``: the same as the ``splitbrain`` command."""

from .cli import entry_point

entry_point()
