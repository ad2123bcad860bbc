"""Atomic fits: a fit that fails or is interrupted (Ctrl-C in any stage) leaves the estimator as it
was before the call, still fitted on the previous data or unfitted (NotFittedError)."""

import numpy as np
import pytest
from sklearn.exceptions import NotFittedError

import invrec.base
import invrec.training
import invrec.invariance.environments
import invrec.invariance.invariant_mask
from invrec.baselines import UltraGCNRecommender
from invrec.datasets import make_multimodal_interactions
from invrec.eior import EIORRecommender, EIORRegressor
from invrec.invariance import EnvironmentInference, MaskLearning
from invrec.milk import MILKRecommender
from invrec.painvrl import PaInvRLRecommender

BACKBONE = dict(max_epochs=2, batch_size=64, embedding_dim=4, content_dim=4, random_state=0,
                early_stopping=False)
STAGES = dict(environments=EnvironmentInference(2, max_rounds=1, epochs=1), n_outer_iter=1)

#: Every stage that trains, per estimator.
CASES = [
    (lambda: UltraGCNRecommender(**BACKBONE, n_negatives=4), "final"),
    (lambda: MILKRecommender(max_epochs=2, batch_size=64, embedding_dim=4, random_state=0,
                             early_stopping=False), "final"),
    *[(lambda: PaInvRLRecommender(**BACKBONE, n_negatives=4, **STAGES, mask=MaskLearning(epochs=1)), stage)
      for stage in ("environments", "mask", "final")],
    *[(lambda: EIORRecommender(**BACKBONE, n_negatives=4, **STAGES,
                               mask=MaskLearning(epochs=1, weighting=0.5)), stage)
      for stage in ("environments", "mask", "final")],
    *[(lambda: EIORRegressor(**BACKBONE, **STAGES, mask=MaskLearning(epochs=1, weighting=0.5)), stage)
      for stage in ("environments", "mask", "final")],
]
IDS = [f"{make().__class__.__name__}-{stage}" for make, stage in CASES]


@pytest.fixture(scope="module")
def data():
    bunch = make_multimodal_interactions(n_users=40, n_items=30, interactions_per_user=4, random_state=0)
    X = bunch.interactions[["user", "item"]]
    # A second data set with other users: a refit that leaked its index would be visible.
    X2 = X.assign(user=X["user"] + 1000)
    return bunch, X, X2


def _ratings(X):
    return 1.0 + (X["user"] + X["item"]) % 5


def _interrupt_stage(monkeypatch, stage):
    """Make the training loop raise KeyboardInterrupt when it starts ``stage``."""
    original = invrec.training.train_epochs

    def interrupted(*args, **kwargs):
        if kwargs.get("stage", "final") == stage:
            raise KeyboardInterrupt
        return original(*args, **kwargs)

    for module in (invrec.base, invrec.invariance.environments, invrec.invariance.invariant_mask):
        monkeypatch.setattr(module, "train_epochs", interrupted)


def _fit(model, X, features):
    y = _ratings(X) if isinstance(model, EIORRegressor) else None
    return model.fit(X, y, item_features=features)


@pytest.mark.parametrize("make, stage", CASES, ids=IDS)
def test_interrupted_refit_keeps_the_previous_model(monkeypatch, data, make, stage):
    bunch, X, X2 = data
    model = _fit(make(), X, bunch.item_features)
    state = dict(vars(model))
    rows = X.iloc[:50]
    predictions = model.predict(rows)
    ranked = model.recommend(X["user"].unique()[:5], n=5)
    _interrupt_stage(monkeypatch, stage)
    with pytest.raises(KeyboardInterrupt):
        _fit(model, X2, bunch.item_features)
    monkeypatch.undo()
    assert vars(model).keys() == state.keys()
    assert all(vars(model)[key] is value for key, value in state.items())
    np.testing.assert_array_equal(model.predict(rows), predictions)
    assert model.recommend(X["user"].unique()[:5], n=5).equals(ranked)


@pytest.mark.parametrize("make, stage", CASES, ids=IDS)
def test_interrupted_first_fit_leaves_an_unfitted_estimator(monkeypatch, data, make, stage):
    bunch, X, _ = data
    model = make()
    params = dict(vars(model))
    _interrupt_stage(monkeypatch, stage)
    with pytest.raises(KeyboardInterrupt):
        _fit(model, X, bunch.item_features)
    assert vars(model) == params
    with pytest.raises(NotFittedError):
        model.predict(X.iloc[:3])


def test_failed_refit_keeps_the_previous_model(data):
    bunch, X, X2 = data
    model = UltraGCNRecommender(**BACKBONE, n_negatives=4).fit(X, item_features=bunch.item_features)
    state = dict(vars(model))
    predictions = model.predict(X.iloc[:20])
    with pytest.raises(ValueError, match="validation_data shares no user"):
        model.fit(X2, item_features=bunch.item_features, validation_data=X)   # fails after encoding X2
    assert all(vars(model)[key] is value for key, value in state.items()) and vars(model).keys() == state.keys()
    np.testing.assert_array_equal(model.predict(X.iloc[:20]), predictions)
    with pytest.raises(ValueError, match="learning_rate"):
        model.set_params(learning_rate=float("inf")).fit(X2)
    np.testing.assert_array_equal(model.predict(X.iloc[:20]), predictions)
