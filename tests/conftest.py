"""Shared fixtures: the optional real-data folder (``../shared/data`` beside the checkout or the
folder the environment variable SPLITBRAIN_SHARED_DATA names), and the small files many tests
read. The files are written once per session; no test may change them."""

import os
from pathlib import Path

import pytest
import torch
from samples import write_messy_folder, write_noise_npz

if os.environ.get("PYTEST_XDIST_WORKER"):
    # One intra-op thread per worker, in this process and the commands it starts: workers that
    # each spin up every core's threads slow each other down several times over.
    torch.set_num_threads(1)
    os.environ["OMP_NUM_THREADS"] = "1"

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


@pytest.fixture(scope="session")
def tiny_npz(tmp_path_factory) -> Path:
    """64 random 32 px images whose label is their own index."""
    return write_noise_npz(tmp_path_factory.mktemp("tiny") / "tiny.npz")


@pytest.fixture(scope="session")
def messy_folder(tmp_path_factory) -> Path:
    """Every kind of bad or odd image file next to plain good ones."""
    return write_messy_folder(tmp_path_factory.mktemp("messy") / "messy")
