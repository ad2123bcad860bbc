"""``warm_start=True`` continues training: 2 epochs then 2 more is 4 epochs, bit for bit, for every
trained estimator; what cannot continue is refused with the fix, and the fitted model is kept."""

import pickle

import numpy as np
import pytest
import torch
from sklearn.base import clone

from invrec import EIORRegressor, PaInvRLRecommender
from invrec.baselines import UltraGCNRecommender
from invrec.datasets import make_multimodal_interactions
from invrec.invariance import EnvironmentInference, MaskLearning
from tiny_estimators import trained_estimators

TINY = dict(batch_size=64, embedding_dim=4, early_stopping=False, device="cpu", random_state=0)
STAGES = dict(environments=EnvironmentInference(2, max_rounds=1, epochs=1), mask=MaskLearning(epochs=2),
              n_outer_iter=1, content_dim=4)


@pytest.fixture(scope="module")
def data():
    bunch = make_multimodal_interactions(n_users=40, n_items=30, random_state=0)
    X = bunch.interactions[["user", "item"]]
    return X, 1.0 + (X["user"] + X["item"]) % 5, bunch.item_features


def _fit(model, data, X=None):
    X_all, ratings, features = data
    X = X_all if X is None else X
    y = ratings.loc[X.index] if isinstance(model, EIORRegressor) else None
    return model.fit(X, y, item_features=features)


def _same_weights(a, b):
    one, two = a.module_.state_dict(), b.module_.state_dict()
    return one.keys() == two.keys() and all(torch.equal(one[k], two[k]) for k in one)


@pytest.mark.parametrize("estimator", trained_estimators(early_stopping=False), ids=lambda e: type(e).__name__)
def test_two_then_two_epochs_is_four(estimator, data):
    four = _fit(clone(estimator).set_params(max_epochs=4), data)
    model = _fit(clone(estimator).set_params(max_epochs=2), data)
    two = model.module_.state_dict()["user_embedding"].clone()
    _fit(model.set_params(warm_start=True), data)
    assert _same_weights(model, four)
    assert not torch.equal(model.module_.state_dict()["user_embedding"], two)
    final = [r for r in model.history_ if r["stage"] == "final"]
    assert [r["epoch"] for r in final] == [1, 2, 1, 2]
    assert [r["train_loss"] for r in final] == [r["train_loss"] for r in four.history_ if r["stage"] == "final"]
    # warm_start=False starts over: the 2-epoch model again.
    _fit(model.set_params(warm_start=False, max_epochs=2), data)
    assert torch.equal(model.module_.state_dict()["user_embedding"], two)


def test_other_users_or_catalog_are_refused_and_the_model_is_kept(data):
    X, _, features = data
    model = _fit(UltraGCNRecommender(**TINY, max_epochs=2, content_dim=4, n_negatives=4), data)
    before = {k: v.clone() for k, v in model.module_.state_dict().items()}
    fewer_users = X[X["user"] != X["user"].iloc[0]]
    with pytest.raises(ValueError, match=r"warm_start=True continues the fitted model.*\(other users\).*"
                                         r"warm_start=False"):
        _fit(model.set_params(warm_start=True), data, fewer_users)
    assert all(torch.equal(before[k], v) for k, v in model.module_.state_dict().items())
    # The same users in another order of appearance: the fitted encoding is kept.
    shuffled = X.sample(frac=1.0, random_state=1)
    _fit(model, data, shuffled)
    assert np.array_equal(model.user_ids_, X["user"].unique())


def test_a_changed_shape_is_refused(data):
    model = _fit(UltraGCNRecommender(**TINY, max_epochs=1, content_dim=4, n_negatives=4), data)
    with pytest.raises(ValueError, match=r"embedding_dim changed since it was fitted \(embedding_dim=4 then\)"):
        _fit(model.set_params(warm_start=True, embedding_dim=8), data)
    assert model.embedding_dim == 8 and model.module_.user_embedding.shape[1] == 4 + 4


def test_staged_estimators_need_the_same_training_rows(data):
    X, _, _ = data
    model = _fit(PaInvRLRecommender(**TINY, **STAGES, max_epochs=1, n_negatives=4), data)
    environments = model.environments_.copy()
    with pytest.raises(ValueError, match="needs the same training rows"):
        _fit(model.set_params(warm_start=True), data, X.iloc[:-5])
    _fit(model, data)                       # the same X: the stages are kept, not run again
    assert model.environments_.equals(environments)
    assert len([r for r in model.history_ if r["stage"] == "mask"]) == 2   # the first fit's only


def test_after_pickling_a_backbone_continues_a_staged_estimator_cannot(data):
    backbone = _fit(UltraGCNRecommender(**TINY, max_epochs=1, content_dim=4, n_negatives=4), data)
    loaded = pickle.loads(pickle.dumps(backbone))
    assert "_warm" not in vars(loaded)
    _fit(loaded.set_params(warm_start=True), data)         # a fresh optimizer on the loaded weights
    assert not _same_weights(loaded, backbone) and len(loaded.history_) == 2
    staged = pickle.loads(pickle.dumps(_fit(PaInvRLRecommender(**TINY, **STAGES, max_epochs=1, n_negatives=4), data)))
    with pytest.raises(ValueError, match="kept in memory only.*warm_start=False"):
        _fit(staged.set_params(warm_start=True), data)
