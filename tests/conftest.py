"""Shared fixtures: the optional real-data folder, ``../shared/data`` beside the checkout or
the folder the environment variable SPLITBRAIN_SHARED_DATA names."""

import os
from pathlib import Path

import pytest

SHARED_DATA = Path(
    os.environ.get("SPLITBRAIN_SHARED_DATA")
    or Path(__file__).resolve().parents[2] / "shared" / "data"
).resolve()  # as the library resolves data paths, so a symlinked folder compares equal


@pytest.fixture
def shared_data() -> Path:
    """The real-data folder beside the checkout; tests needing it skip when it is absent."""
    if not SHARED_DATA.is_dir():
        pytest.skip(
            f"needs the shared real data at {SHARED_DATA} (absent on this clone; set "
            "SPLITBRAIN_SHARED_DATA to its folder)"
        )
    return SHARED_DATA
