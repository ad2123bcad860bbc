"""Fixtures shared by the whole suite."""

from pathlib import Path

import pytest

#: ``../shared/data`` beside the checkout; the real datasets live there and are never copied.
SHARED_DATA = Path(__file__).resolve().parents[2] / "shared" / "data"


@pytest.fixture(scope="session")
def shared_data():
    """Path of the shared datasets folder; skips the test when it is absent."""
    if not SHARED_DATA.is_dir():
        pytest.skip(f"{SHARED_DATA} is absent; the real-data tests need ../shared/data")
    return SHARED_DATA
