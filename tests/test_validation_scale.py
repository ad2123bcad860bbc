"""Ranking passes that scale: the catalog's item vectors once per pass, validation on a bounded
user sample fixed for the fit."""

import numpy as np
import pandas as pd
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

import invrec.base as base
from invrec import EIORRegressor
from invrec.base import validation_users
from invrec.baselines import UltraGCNRecommender
from invrec.datasets import make_multimodal_interactions
from tiny_estimators import trained_estimators

TINY = dict(max_epochs=2, batch_size=64, embedding_dim=4, device="cpu", random_state=0)


@pytest.fixture(scope="module")
def data():
    return make_multimodal_interactions(n_users=40, n_items=30, random_state=0)


@pytest.mark.parametrize("estimator", trained_estimators(max_epochs=2), ids=lambda e: type(e).__name__)
def test_one_catalog_projection_per_ranking_pass(estimator, data, monkeypatch):
    X = data.interactions[["user", "item"]]
    y = 1.0 + (X["user"] + X["item"]) % 5 if isinstance(estimator, EIORRegressor) else None
    estimator.fit(X, y, item_features=data.item_features)
    users = np.arange(estimator.n_users_)
    # The pass's scores are those of the per-chunk path, to the bit.
    torch.testing.assert_close(estimator._user_scorer()(users), estimator._score_users(users), rtol=0, atol=0)

    module = estimator.module_
    calls = []
    original = module.item_vectors
    monkeypatch.setattr(module, "item_vectors", lambda *a, **k: calls.append(a) or original(*a, **k))
    monkeypatch.setattr(type(estimator), "_chunk_size", lambda self: 3)    # 14 chunks of users
    before = estimator.recommend(estimator.user_ids_, n=5)
    assert len(calls) == 1
    monkeypatch.setattr(type(estimator), "_user_scorer", lambda self: self._score_users)
    calls.clear()
    after = estimator.recommend(estimator.user_ids_, n=5)
    assert len(calls) == -(-estimator.n_users_ // 3)          # the old path: once per chunk
    pd.testing.assert_frame_equal(before, after)


def test_a_module_without_the_keyword_scores_as_before():
    class Plain(torch.nn.Module):
        def item_vectors(self, items=None):
            raise AssertionError("not called: score_users does not take item_vectors")

        def score_users(self, users):
            return torch.ones(len(users), 3)

    class Hand(base.BaseRecommender):
        def _fit_model(self, data):
            self.module_ = Plain()

    model = Hand()
    model.module_ = Plain()
    assert model._user_scorer() == model._score_users


def test_validation_users_hand_values():
    assert validation_users([5, 2, 5, 9]).tolist() == [2, 5, 9]
    sample = validation_users(np.repeat(np.arange(100), 3), max_users=7, seed=4)
    assert len(sample) == 7 and np.all(np.diff(sample) > 0) and set(sample) <= set(range(100))
    assert validation_users(range(100), max_users=7, seed=4).tolist() == sample.tolist()
    assert validation_users(range(100), max_users=7, seed=5).tolist() != sample.tolist()


@settings(max_examples=40, deadline=None)
@given(st.lists(st.integers(0, 60), min_size=1, max_size=200), st.integers(1, 30), st.integers(0, 2**31 - 1))
def test_validation_users_is_a_sorted_subset_of_the_bounded_size(users, limit, seed):
    sample = validation_users(users, max_users=limit, seed=seed)
    distinct = np.unique(users)
    assert len(sample) == min(limit, len(distinct))
    assert np.isin(sample, distinct).all() and np.all(np.diff(sample) > 0)


def test_early_stopping_ranks_the_bounded_sample_only(data, monkeypatch):
    """With the cap below the validation users, a pass ranks exactly the cap's sample, the same
    users every epoch, and the recorded metric is the NDCG@20 of those users' held-out rows."""
    monkeypatch.setattr(base, "VALIDATION_MAX_USERS", 9)
    ranked = []
    original = base.chunked_top_k

    def spy(score_fn, users, *args, **kwargs):
        ranked.append(np.asarray(users).copy())
        return original(score_fn, users, *args, **kwargs)

    monkeypatch.setattr(base, "chunked_top_k", spy)
    X = data.interactions[["user", "item"]]
    model = UltraGCNRecommender(**{**TINY, "max_epochs": 3}, content_dim=4, n_negatives=4)
    valid = data.test[["user", "item"]]
    model.fit(X, item_features=data.item_features, validation_data=valid)
    assert len(ranked) == 3 and all(len(r) == 9 for r in ranked)
    assert all(np.array_equal(r, ranked[0]) for r in ranked)
    sampled = model.user_ids_[ranked[0]]
    assert set(sampled) < set(valid["user"])
    # The best epoch is restored: its score on the sampled users' rows is the best recorded
    # validation metric (score(X) ranks as validation does: training items excluded).
    monkeypatch.setattr(base, "chunked_top_k", original)
    best = max(r["valid_ndcg@20"] for r in model.history_ if "valid_ndcg@20" in r)
    assert model.score(valid[valid["user"].isin(sampled)]) == pytest.approx(best, abs=1e-12)
    # A refit with the same seed validates on the same users; without the cap, on all of them.
    first = ranked[0]
    ranked.clear()
    monkeypatch.setattr(base, "chunked_top_k", spy)
    model.fit(X, item_features=data.item_features, validation_data=valid)
    assert np.array_equal(ranked[0], first)
    monkeypatch.setattr(base, "VALIDATION_MAX_USERS", 10_000)
    ranked.clear()
    model.fit(X, item_features=data.item_features, validation_data=valid)
    assert len(ranked[0]) == valid["user"].nunique()
