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


@pytest.fixture(scope="session")
def small_split():
    """A small generated problem and a per-user split of it: ``(bunch, train, test)``.

    The fitted-estimator suites (the contract, persistence) share it; treat it as read-only.
    """
    from invrec.datasets import make_multimodal_interactions
    from invrec.model_selection import train_test_split

    bunch = make_multimodal_interactions(n_users=40, n_items=30, interactions_per_user=4,
                                         test_interactions_per_user=1, random_state=0)
    train, test = train_test_split(bunch.interactions, test_size=0.25, by="user", random_state=0)
    return bunch, train, test


@pytest.fixture(scope="session")
def new_item_split():
    """A generated problem with 20% new items: ``(bunch, train, valid, test, new)``.

    ``train``, ``valid`` and ``test`` are the ``(user, item)`` rows of
    :class:`~invrec.model_selection.NewItemSplit` (half the new items validate, half test), ``new``
    its ``new_items`` dict. The MILK suites share it; treat it as read-only.
    """
    from invrec.datasets import make_multimodal_interactions
    from invrec.model_selection import NewItemSplit

    data = make_multimodal_interactions(n_users=120, n_items=100, interactions_per_user=4,
                                        test_interactions_per_user=1, random_state=0)
    X = data.interactions[["user", "item"]]
    cv = NewItemSplit(test_size=0.2, validation=True, random_state=0)
    train, valid, test = next(cv.split_validation(X))
    return data, X.iloc[train], X.iloc[valid], X.iloc[test], cv.new_items(X)
