"""The contract every invrec estimator keeps, run on every estimator (add new ones to _configurations).

sklearn's own estimator checks run with the few expected failures an id-based recommender must
have; then the recommender-specific promises: clone, params, pickling, reproducibility, string ids,
seen items, candidates, unknown ids, GridSearchCV with a ranking scorer, Pipeline.
"""

import pickle
import warnings

import numpy as np
import pandas as pd
import pytest
from sklearn.base import clone
from sklearn.exceptions import NotFittedError
from sklearn.model_selection import GridSearchCV
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import FunctionTransformer
from sklearn.utils.estimator_checks import parametrize_with_checks

from invrec.baselines import PopularityRecommender, UltraGCNRecommender
from invrec.eior import EIORRecommender, EIORRegressor
from invrec.invariance import EnvironmentInference, MaskLearning
from invrec.metrics import make_ranking_scorer
from invrec.milk import MILKRecommender
from invrec.painvrl import PaInvRLRecommender
from invrec.model_selection import PerUserHoldout
from invrec.utils.discovery import all_estimators

TINY_TRAINING = dict(max_epochs=3, batch_size=64, embedding_dim=4, content_dim=4, n_negatives=4)


def _stages(weighting="mgda"):
    """Tiny stage objects (fresh ones for every estimator: they are parameters, not shared)."""
    return dict(environments=EnvironmentInference(2, max_rounds=1, epochs=1), n_outer_iter=1,
                mask=MaskLearning(epochs=1, weighting=weighting))


def _without(params, *names):
    return {k: v for k, v in params.items() if k not in names}


def _configurations():
    """Tiny instances of every estimator, by class name: [(instance, a parameter worth searching)].

    Every class of ``all_estimators()`` needs an entry (``test_every_estimator_is_covered``).
    """
    return {
        "PopularityRecommender": [(PopularityRecommender(), None)],
        "UltraGCNRecommender": [(UltraGCNRecommender(**TINY_TRAINING, random_state=0), "embedding_dim")],
        "PaInvRLRecommender": [(PaInvRLRecommender(**TINY_TRAINING, **_stages(), random_state=0), "embedding_dim")],
        "MILKRecommender": [(MILKRecommender(max_epochs=3, batch_size=64, embedding_dim=4, random_state=0), "embedding_dim")],
        "EIORRecommender": [(EIORRecommender(**TINY_TRAINING, **_stages(0.5), random_state=0), "embedding_dim")],
        "EIORRegressor": [(EIORRegressor(**_without(TINY_TRAINING, "n_negatives"), **_stages(0.5), random_state=0), "embedding_dim")],
    }


CONFIGURATIONS = _configurations()
ESTIMATORS = [est for configs in CONFIGURATIONS.values() for est, _ in configs]
# sklearn's checks fit on a few rows per user, too few to carve a validation share from.
CHECK_ESTIMATORS = [clone(est).set_params(early_stopping=False) if "early_stopping" in est.get_params()
                    else clone(est) for est in ESTIMATORS]
SEARCH_PARAM = {name: param for name, configs in CONFIGURATIONS.items() for _, param in configs}
IDS = [type(est).__name__ for est in ESTIMATORS]


def test_every_estimator_is_covered():
    """The configurations are exactly invrec's estimators: a new one cannot be forgotten here."""
    discovered = dict(all_estimators())
    assert set(CONFIGURATIONS) == set(discovered), (
        f"missing from _configurations(): {sorted(set(discovered) - set(CONFIGURATIONS))}; "
        f"not an invrec estimator: {sorted(set(CONFIGURATIONS) - set(discovered))}")
    for name, configs in CONFIGURATIONS.items():
        assert configs and all(type(est) is discovered[name] for est, _ in configs), name
    assert {type(est) for est in ESTIMATORS} == set(discovered.values())


# Why each sklearn check cannot pass for a recommender whose X is a table of (user, item) ids.
# sklearn's generic data has 1, 3 or more columns of features; ours has exactly (user, item).
_ID_INPUT = "X is a table of (user, item) ids: any other width is rejected with our own message"
_EXPECTED_FAILURES = {
    name: _ID_INPUT
    for name in (
        "check_fit_score_takes_y", "check_dont_overwrite_parameters", "check_n_features_in",
        "check_n_features_in_after_fitting", "check_positive_only_tag_during_fit",
        "check_estimators_dtypes", "check_complex_data", "check_dtype_object",
        "check_estimators_empty_data_messages", "check_pipeline_consistency", "check_estimators_pickle",
        "check_f_contiguous_array_estimator", "check_methods_sample_order_invariance",
        "check_methods_subset_invariance", "check_fit2d_1sample", "check_fit2d_1feature",
        "check_dict_unchanged", "check_fit2d_predict1d", "check_estimators_nan_inf",
        # the regressor checks (EIORRegressor carries sklearn's regressor tag) fit generic features
        "check_regressors_train", "check_regressor_data_not_an_array",
        "check_regressors_no_decision_function", "check_supervised_y_2d", "check_regressors_int",
    )
}


def _expected_failed_checks(estimator):
    return _EXPECTED_FAILURES


@parametrize_with_checks(CHECK_ESTIMATORS, expected_failed_checks=_expected_failed_checks)
def test_sklearn_checks(estimator, check):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        check(estimator)


# ---------------------------------------------------------------- recommender contract
@pytest.fixture(scope="module")
def data(small_split):
    return small_split


@pytest.fixture(params=ESTIMATORS, ids=IDS)
def estimator(request):
    return clone(request.param)


def _y(est, X):
    """Ratings 1-5 as y for an estimator that needs a target (a rating regressor), None for the others."""
    return 1.0 + np.arange(len(X)) % 5 if est.__sklearn_tags__().target_tags.required else None


def _fit(est, data, X=None):
    bunch, train, _ = data
    X = train if X is None else X
    return est.fit(X, _y(est, X), item_features=bunch.item_features)


def _comparable(params):
    """Nested stage objects compared by their own parameters (clone makes new ones)."""
    return {k: (type(v), v.get_params()) if hasattr(v, "get_params") else v for k, v in params.items()}


def test_clone_and_params_round_trip(estimator):
    params = estimator.get_params()
    again = clone(estimator)
    assert _comparable(again.get_params()) == _comparable(params)
    estimator.set_params(**params)
    assert _comparable(estimator.get_params()) == _comparable(params)
    with pytest.raises(ValueError):
        estimator.set_params(no_such_parameter=1)


def test_unfitted_use_raises(estimator):
    with pytest.raises(NotFittedError):
        estimator.recommend([0])
    with pytest.raises(NotFittedError):
        estimator.predict(pd.DataFrame({"user": [0], "item": [0]}))


def test_fit_returns_self_and_does_not_touch_input(estimator, data):
    _, train, _ = data
    before = train.copy()
    assert _fit(estimator, data) is estimator
    pd.testing.assert_frame_equal(train, before)
    assert estimator.n_items_ == 30  # every item with features is in the catalog
    assert set(estimator.unseen_items_) == set(range(30)) - set(train["item"])


def test_pickle_round_trip_identical_predictions(estimator, data):
    _, train, test = data
    _fit(estimator, data)
    again = pickle.loads(pickle.dumps(estimator))
    np.testing.assert_array_equal(again.predict(test), estimator.predict(test))
    pd.testing.assert_frame_equal(again.recommend([0, 5], n=5), estimator.recommend([0, 5], n=5))


def test_refit_is_reproducible(estimator, data):
    _, _, test = data
    first = _fit(clone(estimator), data).predict(test)
    second = _fit(estimator, data).predict(test)
    np.testing.assert_array_equal(first, second)
    again = _fit(estimator, data).predict(test)  # a refit of the same object starts over
    np.testing.assert_array_equal(first, again)


def test_string_ids(estimator, data):
    bunch, train, test = data
    as_str = lambda f: f.assign(user="u" + f["user"].astype(str), item="i" + f["item"].astype(str))  # noqa: E731
    feats = bunch.item_features.reindex(bunch.item_features.item_ids)  # copy
    feats = type(feats)({m: feats[m] for m in feats}, item_ids=["i" + str(i) for i in feats.item_ids])
    estimator.fit(as_str(train), _y(estimator, train), item_features=feats)
    recs = estimator.recommend(["u0", "u3"], n=4)
    assert set(recs["user"]) == {"u0", "u3"} and recs["item"].str.startswith("i").all()
    scores = estimator.predict(as_str(test))
    assert scores.shape == (len(test),) and np.isfinite(scores).all()


def test_recommend_excludes_seen_and_respects_candidates(estimator, data):
    _, train, _ = data
    _fit(estimator, data)
    users = train["user"].unique()[:10]
    recs = estimator.recommend(users, n=8)
    seen = set(zip(train["user"], train["item"]))
    assert not any(pair in seen for pair in zip(recs["user"], recs["item"]))
    assert recs.groupby("user").size().le(8).all()
    assert (recs.groupby("user")["rank"].apply(lambda r: list(r) == list(range(1, len(r) + 1)))).all()
    assert recs.groupby("user")["score"].apply(lambda s: s.is_monotonic_decreasing).all()
    with_seen = estimator.recommend(users, n=30, exclude_seen=False)
    assert with_seen.groupby("user").size().eq(30).all()
    candidates = [1, 2, 3, 4, 5]
    restricted = estimator.recommend(users, n=3, items=candidates, exclude_seen=False)
    assert set(restricted["item"]) <= set(candidates)
    extra = pd.DataFrame({"user": [users[0]] * 30, "item": range(30)})
    assert estimator.recommend([users[0]], exclude=extra).empty


def test_unknown_ids(estimator, data):
    _fit(estimator, data)
    with pytest.raises(ValueError, match="not seen in fit"):
        estimator.recommend(["nobody"])
    with pytest.raises(ValueError, match="not in the catalog"):
        estimator.predict(pd.DataFrame({"user": [0], "item": [999]}))
    estimator.set_params(handle_unknown="ignore")
    assert estimator.recommend(["nobody", 0], n=2)["user"].tolist() == [0, 0]
    scores = estimator.predict(pd.DataFrame({"user": [0, "nobody", 0], "item": [999, 1, 1]}))
    assert np.isnan(scores[:2]).all() and np.isfinite(scores[2])


def test_score_is_the_documented_ranking_metric(estimator, data):
    _, _, test = data
    _fit(estimator, data)
    assert estimator.score(test) == make_ranking_scorer("ndcg", k=20)(estimator, test)
    assert 0.0 <= estimator.score(test) <= 1.0


def test_grid_search_with_per_user_holdout(estimator, data):
    bunch, train, _ = data
    param = SEARCH_PARAM[type(estimator).__name__]
    grid = {param: [2, 4]} if param else {"handle_unknown": ["error", "ignore"]}
    search = GridSearchCV(estimator, grid, cv=PerUserHoldout(n_splits=2, random_state=0),
                          scoring={"recall": make_ranking_scorer("recall", k=5),
                                   "ndcg": make_ranking_scorer("ndcg", k=5)},
                          refit="ndcg", n_jobs=2, error_score="raise")
    search.fit(train, _y(estimator, train), item_features=bunch.item_features)
    assert np.isfinite(search.cv_results_["mean_test_ndcg"]).all()
    assert search.best_estimator_.n_items_ == 30


def test_pipeline_final_step(estimator, data):
    bunch, train, test = data
    pipe = Pipeline([("select", FunctionTransformer(lambda X: X[["user", "item"]])), ("rec", estimator)])
    pipe.fit(train, _y(estimator, train), rec__item_features=bunch.item_features)
    np.testing.assert_allclose(pipe.predict(test), pipe[-1].predict(test))
    assert pipe.score(test) == pipe[-1].score(test)


def test_bad_input_errors(estimator, data):
    bunch, train, _ = data
    with pytest.raises(ValueError, match="'user' and 'item'"):
        estimator.fit(train.rename(columns={"user": "uid"}))
    with pytest.raises(ValueError, match="shape"):
        estimator.fit(np.zeros((5, 3)))
    with pytest.raises(TypeError, match="item_features must be"):
        estimator.fit(train, item_features=np.zeros((3, 3)))
    if not isinstance(estimator, EIORRegressor):   # a rating of 0 is a rating; a weight of 0 drops the row
        with pytest.raises(ValueError, match="y <= 0"):
            estimator.fit(train, np.zeros(len(train)))
    with pytest.raises(ValueError, match="handle_unknown"):
        clone(estimator).set_params(handle_unknown="skip").fit(train)
