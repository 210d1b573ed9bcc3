"""Shared fixtures of the test suite."""

import os
from pathlib import Path

import pytest


@pytest.fixture(scope="session")
def data_dir():
    """The real TFDS data: $TFDS_DATA_DIR, else ../shared/tfds beside the clone (as in CI)."""
    path = Path(os.environ.get("TFDS_DATA_DIR") or Path(__file__).resolve().parents[2] / "shared" / "tfds")
    if not (path / "mnist").is_dir():
        pytest.skip(f"real TFDS data not found in {path}")
    return os.fspath(path)
