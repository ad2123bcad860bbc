"""Fixtures shared by the whole suite."""

import os
from pathlib import Path

import pytest
from hypothesis import settings

# CI draws the same property-test examples on every run (a red CI then means a real regression,
# not an unlucky draw); locally each run explores new ones.
settings.register_profile("ci", derandomize=True)
if os.environ.get("CI"):
    settings.load_profile("ci")

#: ``../shared/data`` beside the checkout; the real datasets live there and are never copied.
SHARED_DATA = Path(__file__).resolve().parents[2] / "shared" / "data"


@pytest.fixture(scope="session")
def shared_data():
    """Path of the shared datasets folder; skips the test when it is absent."""
    if not SHARED_DATA.is_dir():
        pytest.skip(f"{SHARED_DATA} is absent; the real-data tests need ../shared/data")
    return SHARED_DATA
