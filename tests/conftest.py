"""Shared fixtures: the optional ../shared data folder beside the checkout."""

from pathlib import Path

import pytest

SHARED_DATA = Path(__file__).resolve().parents[2] / "shared" / "data"


@pytest.fixture
def shared_data() -> Path:
    """The real-data folder beside the checkout; tests needing it skip when it is absent."""
    if not SHARED_DATA.is_dir():
        pytest.skip(f"needs the shared real data at {SHARED_DATA} (absent on this clone)")
    return SHARED_DATA
