"""invrec.pipeline and the scorers through pipelines: recommend, GridSearchCV scores equal to the
bare estimator's, metadata routing of item_features, item-content steps, clone / params / pickle,
scorers that refuse what they cannot score, and scorers by name."""

import pickle
import re
import textwrap
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import sklearn
from sklearn.base import BaseEstimator, RegressorMixin, clone
from sklearn.decomposition import PCA
from sklearn.dummy import DummyRegressor
from sklearn.exceptions import NotFittedError
from sklearn.model_selection import GridSearchCV
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import FunctionTransformer

from invrec.baselines import PopularityRecommender, UltraGCNRecommender
from invrec.datasets import make_multimodal_interactions
from invrec.metrics import get_scorer, make_ranking_scorer, make_rating_scorer
from invrec.model_selection import PerUserHoldout
from invrec.pipeline import RecommenderPipeline, make_pipeline, resolve_final_step
from invrec.preprocessing import KCoreFilter, ModalityTransformer

TINY = dict(embedding_dim=4, content_dim=4, max_epochs=2, batch_size=64, n_negatives=4,
            early_stopping=False, random_state=0)
CV = PerUserHoldout(n_splits=2, random_state=0)
GRID = {"embedding_dim": [4, 8]}


@pytest.fixture(scope="module")
def data():
    bunch = make_multimodal_interactions(n_users=30, n_items=25, random_state=0)
    # every generated user has 12 rows: keep a random half so that users and items differ in counts
    rows = np.random.default_rng(0).random(len(bunch.interactions)) < 0.5
    return bunch.interactions.loc[rows, ["user", "item"]].reset_index(drop=True), bunch.item_features


def _prefixed(grid, step):
    return {f"{step}__{key}": values for key, values in grid.items()}


def _search(estimator, grid, X, refit=True, **fit_params):
    search = GridSearchCV(estimator, grid, cv=CV, scoring=make_ranking_scorer("ndcg", k=10),
                          error_score="raise", refit=refit)
    return search.fit(X, **fit_params)


# ---------------------------------------------------------------- ranking through a pipeline
def test_recommend_predict_and_score_go_to_the_final_step(data):
    X, _ = data
    pipe = make_pipeline(KCoreFilter(5, 3), PopularityRecommender()).fit(X)
    kept, _ = KCoreFilter(5, 3).fit_resample(X)
    assert len(kept) < len(X)
    bare = PopularityRecommender().fit(kept)
    users = bare.user_ids_[:5]
    pd.testing.assert_frame_equal(pipe.recommend(users, n=4), bare.recommend(users, n=4))
    pd.testing.assert_frame_equal(pipe.recommend(users, n=3, exclude_seen=False, items=bare.item_ids_[:6]),
                                  bare.recommend(users, n=3, exclude_seen=False, items=bare.item_ids_[:6]))
    pairs = kept.iloc[:7]
    np.testing.assert_array_equal(pipe.predict(pairs), bare.predict(pairs))
    assert pipe.score(kept) == bare.score(kept)
    # fitted attributes read through, and only once fitted
    np.testing.assert_array_equal(pipe.unseen_items_, bare.unseen_items_)
    assert pipe.n_items_ == bare.n_items_ and pipe.named_steps.kcorefilter.n_rows_kept_ == len(kept)
    assert not hasattr(make_pipeline(KCoreFilter(), PopularityRecommender()), "unseen_items_")


def test_samplers_filter_y_along_and_the_final_step_gets_it(data):
    X, _ = data
    weights = np.random.default_rng(1).integers(1, 4, len(X)).astype(float)
    pipe = make_pipeline(KCoreFilter(5, 3), PopularityRecommender()).fit(X, weights)
    kept, kept_weights = KCoreFilter(5, 3).fit_resample(X, weights)
    np.testing.assert_array_equal(pipe.popularity_, PopularityRecommender().fit(kept, kept_weights).popularity_)
    assert pipe.popularity_.sum() == kept_weights.sum() < weights.sum()


def test_memory_caches_the_steps_and_verbose_reports_them(data, tmp_path, capsys):
    X, _ = data
    cached = make_pipeline(KCoreFilter(5, 3), PopularityRecommender(), memory=str(tmp_path), verbose=True)
    first = cached.fit(X).popularity_.copy()
    np.testing.assert_array_equal(cached.fit(X).popularity_, first)
    assert any(tmp_path.iterdir())
    lines = capsys.readouterr().out.splitlines()
    assert len(lines) == 4 and lines[0].startswith("[RecommenderPipeline] (step 1 of 2) kcorefilter")
    with pytest.raises(ValueError, match="'verbose' parameter"):
        make_pipeline(PopularityRecommender(), verbose="yes").fit(X)


def test_grid_search_over_a_pipeline_equals_the_bare_estimator(data):
    X, features = data
    bare = _search(UltraGCNRecommender(**TINY), GRID, X, refit=False, item_features=features)
    pipe = make_pipeline(KCoreFilter(1, 1), UltraGCNRecommender(**TINY))
    through = _search(pipe, _prefixed(GRID, "ultragcnrecommender"), X, refit=False, item_features=features)
    for key in ("split0_test_score", "split1_test_score", "mean_test_score"):
        assert np.isfinite(bare.cv_results_[key]).all()
        np.testing.assert_array_equal(through.cv_results_[key], bare.cv_results_[key])
    assert bare.cv_results_["mean_test_score"][0] != bare.cv_results_["mean_test_score"][1]


def test_a_plain_sklearn_pipeline_scores_as_the_bare_estimator(data):
    X, features = data
    grid = {"handle_unknown": ["error", "ignore"]}
    bare = _search(PopularityRecommender(), grid, X, item_features=features)
    plain = Pipeline([("identity", FunctionTransformer()), ("model", PopularityRecommender())])
    plain = _search(plain, _prefixed(grid, "model"), X, model__item_features=features)
    assert np.isfinite(plain.cv_results_["mean_test_score"]).all()
    np.testing.assert_array_equal(plain.cv_results_["mean_test_score"], bare.cv_results_["mean_test_score"])


def test_grid_search_over_the_filter_equals_filtering_each_fold_by_hand(data):
    X, _ = data
    pipe = make_pipeline(KCoreFilter(1, 1), PopularityRecommender(handle_unknown="ignore"))
    search = _search(pipe, {"kcorefilter__min_user_interactions": [1, 3],
                            "kcorefilter__min_item_interactions": [2]}, X, refit=False)
    scorer = make_ranking_scorer("ndcg", k=10)
    for index, k_user in enumerate([1, 3]):
        for fold, (train, test) in enumerate(CV.split(X)):
            kept, _ = KCoreFilter(k_user, 2).fit_resample(X.iloc[train])
            assert len(kept) < len(train)
            model = PopularityRecommender(handle_unknown="ignore").fit(kept)
            # every held-out row is scored, those of the users the filter removed included
            expected = scorer(model, X.iloc[test])
            assert search.cv_results_[f"split{fold}_test_score"][index] == expected
    assert search.cv_results_["mean_test_score"][1] != search.cv_results_["mean_test_score"][0]


@pytest.mark.parametrize("routing", [False, True])
def test_item_features_reach_the_final_step_with_and_without_metadata_routing(data, routing):
    X, features = data
    with sklearn.config_context(enable_metadata_routing=routing):
        bare_model = PopularityRecommender()
        if routing:
            bare_model.set_fit_request(item_features=True, validation_data=False)
        grid = {"handle_unknown": ["error", "ignore"]}
        bare = _search(bare_model, grid, X, item_features=features)
        pipe = make_pipeline(KCoreFilter(1, 2), PopularityRecommender())
        through = _search(pipe, _prefixed(grid, "popularityrecommender"), X, item_features=features)
        kept, _ = KCoreFilter(1, 2).fit_resample(X)
    assert np.isfinite(through.cv_results_["mean_test_score"]).all()
    final = through.best_estimator_[-1]
    assert final.item_features_ is not None and final.n_items_ == features.n_items
    # the refit final step is the bare model fitted on the filtered rows with the features
    expected = PopularityRecommender().fit(kept, item_features=features)
    np.testing.assert_array_equal(final.popularity_, expected.popularity_)
    assert bare.best_estimator_.item_features_ is not None


class _Tagged(BaseEstimator):
    """An identity transformer of X that records a fit parameter."""

    def fit(self, X, y=None, tag=None):
        self.tag_ = tag
        return self

    def transform(self, X):
        return X


@pytest.mark.parametrize("routing", [False, True])
def test_fit_parameters_of_a_step(data, routing):
    X, _ = data
    with sklearn.config_context(enable_metadata_routing=routing):
        step = _Tagged().set_fit_request(tag=True) if routing else _Tagged()
        pipe = make_pipeline(step, PopularityRecommender())
        pipe.fit(X, **({"tag": "t"} if routing else {"_tagged__tag": "t"}))
    assert pipe.named_steps._tagged.tag_ == "t" and step is not pipe.named_steps._tagged


def test_finalstep_prefix_is_read_as_item_features_once(data):
    X, features = data
    pipe = make_pipeline(ModalityTransformer(), PopularityRecommender())
    pipe.fit(X, popularityrecommender__item_features=features)
    np.testing.assert_allclose(pipe.item_features_["visual"],
                               ModalityTransformer().fit_transform(features)["visual"])
    with pytest.raises(ValueError, match="given twice"):
        pipe.fit(X, item_features=features, popularityrecommender__item_features=features)


# ---------------------------------------------------------------- item-content steps
def test_item_content_steps_transform_fit_and_new_item_features(data):
    X, features = data
    known = features.reindex(features.item_ids[:20])
    new = features.reindex(features.item_ids[20:])
    X = X[X["item"].isin(known.item_ids)]
    pipe = make_pipeline(ModalityTransformer(PCA(n_components=3), modalities="visual"),
                         UltraGCNRecommender(**TINY)).fit(X, item_features=known)
    step = pipe.named_steps.modalitytransformer
    final = pipe[-1]
    assert final.item_features_.dims == {"visual": 3, "acoustic": 16}
    np.testing.assert_array_equal(final.item_features_["visual"], step.transform(known)["visual"])
    users = final.user_ids_[:4]
    # new items' content goes through the fitted step before the recommender scores it
    pd.testing.assert_frame_equal(pipe.recommend(users, n=5, item_features=new),
                                  final.recommend(users, n=5, item_features=step.transform(new)))
    pairs = pd.DataFrame({"user": np.repeat(users, 2), "item": np.tile(new.item_ids[:2], 4)})
    np.testing.assert_array_equal(pipe.predict(pairs, item_features=new),
                                  final.predict(pairs, item_features=step.transform(new)))
    with pytest.raises(ValueError, match="no item_features"):
        clone(pipe).fit(X)


def test_validation_data_and_scored_rows_go_through_the_transformers_of_X(data):
    X, _ = data
    to_invrec = FunctionTransformer(lambda t: t.rename(columns={"userID": "user", "itemID": "item"}))
    theirs = X.rename(columns={"user": "userID", "item": "itemID"})
    train, valid = theirs.iloc[:100], theirs.iloc[100:]
    pipe = make_pipeline(to_invrec, UltraGCNRecommender(**TINY)).fit(train, validation_data=valid)
    bare = UltraGCNRecommender(**TINY).fit(X.iloc[:100], validation_data=X.iloc[100:])
    assert pipe.score(valid) == bare.score(X.iloc[100:])
    assert make_ranking_scorer("recall", k=5)(pipe, valid) == make_ranking_scorer("recall", k=5)(bare, X.iloc[100:])


# ---------------------------------------------------------------- scikit-learn plumbing
def test_clone_params_pickle_and_slicing(data):
    X, features = data
    pipe = make_pipeline(KCoreFilter(2, 1), ModalityTransformer(PCA(2)), UltraGCNRecommender(**TINY))
    params = pipe.get_params()
    assert params["modalitytransformer__transformer__n_components"] == 2
    assert params["ultragcnrecommender__embedding_dim"] == 4
    pipe.set_params(ultragcnrecommender__embedding_dim=8, kcorefilter__min_user_interactions=3)
    assert pipe[-1].embedding_dim == 8 and pipe[0].min_user_interactions == 3
    copy = clone(pipe)
    assert isinstance(copy, RecommenderPipeline) and copy.get_params()["kcorefilter__min_user_interactions"] == 3
    with pytest.raises(NotFittedError):
        copy.recommend([0])
    pipe.fit(X, item_features=features)
    users = pipe.user_ids_[:3]
    again = pickle.loads(pickle.dumps(pipe))
    pd.testing.assert_frame_equal(again.recommend(users, n=5), pipe.recommend(users, n=5))
    assert isinstance(pipe[:1], RecommenderPipeline) and len(pipe[:1]) == 1


def test_a_failed_fit_leaves_the_fitted_steps_as_they_were(data):
    X, _ = data
    pipe = make_pipeline(KCoreFilter(5, 3), PopularityRecommender()).fit(X)
    fitted = pipe.named_steps.kcorefilter
    kept = fitted.n_rows_kept_
    before = pipe.recommend(pipe.user_ids_[:3], n=3)
    pipe.set_params(kcorefilter__min_user_interactions=1, popularityrecommender__handle_unknown="nope")
    with pytest.raises(ValueError, match="handle_unknown"):
        pipe.fit(X)
    # the filter was refitted on a clone: the fitted step is the one of the first fit
    assert pipe.named_steps.kcorefilter is fitted and fitted.n_rows_kept_ == kept < len(X)
    pd.testing.assert_frame_equal(pipe.recommend(pipe.user_ids_[:3], n=3), before)


def test_bad_steps_and_parameters_are_clear_errors(data):
    X, _ = data
    with pytest.raises(ValueError, match="does not accept the parameter 'sample_weight'"):
        make_pipeline(KCoreFilter(1, 1), PopularityRecommender()).fit(X, sample_weight=np.ones(len(X)))
    with pytest.raises(TypeError, match="last step .* is the recommender"):
        RecommenderPipeline([("core", KCoreFilter()), ("end", "passthrough")]).fit(X)
    with pytest.raises(TypeError, match="not a transformer"):
        make_pipeline(PopularityRecommender(), PopularityRecommender()).fit(X)
    plain = Pipeline([("identity", FunctionTransformer()), ("end", "passthrough")]).fit(X)
    with pytest.raises(TypeError, match="passthrough"):
        resolve_final_step(plain, X)


# ---------------------------------------------------------------- scorers that refuse
def test_ranking_scorer_refuses_what_cannot_rank(data):
    X, _ = data
    dummy = DummyRegressor().fit(np.zeros((len(X), 2)), np.ones(len(X)))
    with pytest.raises(TypeError, match="cannot score DummyRegressor: it cannot rank"):
        make_ranking_scorer()(dummy, X)
    search = GridSearchCV(Pipeline([("identity", FunctionTransformer()), ("model", DummyRegressor())]),
                          {"model__strategy": ["mean", "median"]}, cv=CV,
                          scoring=make_ranking_scorer(), error_score="raise")
    with pytest.raises(TypeError, match="it cannot rank"):
        search.fit(X, np.ones(len(X)))


class _RatingLike(RegressorMixin, BaseEstimator):
    """A recommender tagged as a regressor: predicts 3 for every pair."""

    def fit(self, X, y=None):
        return self

    def predict(self, X):
        return np.full(len(X), 3.0)

    def recommend(self, users, n=10, **kwargs):  # pragma: no cover - never called here
        raise AssertionError


def test_rating_scorer_refuses_a_ranking_model_and_scores_a_regressor(data):
    X, _ = data
    rated = X.iloc[:4].assign(rating=[4.0, 2.0, 3.0, 5.0])
    for model in (PopularityRecommender().fit(X), make_pipeline(KCoreFilter(1, 1), PopularityRecommender()).fit(X)):
        with pytest.raises(TypeError, match="PopularityRecommender is a ranking model"):
            make_rating_scorer()(model, rated)
    with pytest.raises(TypeError, match="has no predict"):
        make_rating_scorer()(object(), rated)
    # a model tagged as a regressor is scored: -(1 + 1 + 0 + 4) / 4 squared errors -> -sqrt(1.5)
    assert make_rating_scorer()(_RatingLike().fit(X), rated) == -np.sqrt(1.5)


# ---------------------------------------------------------------- scorers by name
@pytest.mark.parametrize("name, expected", [
    ("ndcg@20", "make_ranking_scorer(metric='ndcg', k=20, candidates='all', exclude_seen=True)"),
    ("recall", "make_ranking_scorer(metric='recall', k=20, candidates='all', exclude_seen=True)"),
    ("map@3", "make_ranking_scorer(metric='map', k=3, candidates='all', exclude_seen=True)"),
    ("neg_rmse", "make_rating_scorer(metric='rmse', column='rating', skip_missing=False)"),
])
def test_get_scorer_names(name, expected):
    assert repr(get_scorer(name)) == expected


def test_get_scorer_options_callables_and_errors():
    assert get_scorer("hit_rate@5", exclude_seen=False).exclude_seen is False
    scorer = make_ranking_scorer("mrr", 4)
    assert get_scorer(scorer) is scorer
    for bad, match in [("ndcg@", "not an invrec scorer name"), ("ndcg@x", "'<metric>@<k>'"),
                       ("rmse", "neg_rmse"), ("accuracy", "sklearn.metrics.get_scorer"),
                       (3, "scorer name such as")]:
        with pytest.raises(ValueError, match=match):
            get_scorer(bad)
    with pytest.raises(ValueError, match="callable"):
        get_scorer(scorer, k=3)
    # scikit-learn has no public way to add names: its table does not know ours
    with pytest.raises(ValueError, match="not a valid scoring value"):
        sklearn.metrics.get_scorer("ndcg@20")


def test_get_scorer_in_a_search_equals_make_ranking_scorer(data):
    X, _ = data
    pipe = make_pipeline(KCoreFilter(1, 2), PopularityRecommender(handle_unknown="ignore"))
    grid = {"kcorefilter__min_user_interactions": [1, 3]}
    by_name = GridSearchCV(pipe, grid, cv=CV, error_score="raise",
                           scoring={n: get_scorer(n) for n in ("ndcg@10", "recall@5")}, refit="ndcg@10").fit(X)
    direct = GridSearchCV(pipe, grid, cv=CV, error_score="raise", scoring=make_ranking_scorer("recall", 5)).fit(X)
    np.testing.assert_array_equal(by_name.cv_results_["mean_test_recall@5"], direct.cv_results_["mean_test_score"])


def test_user_guide_page_runs_as_written():
    page = Path(__file__).resolve().parents[1] / "docs" / "user_guide" / "pipelines.rst"
    blocks = re.findall(r"\.\. code-block:: python\n\n((?:(?:    .*)?\n)+)", page.read_text())
    namespace = {}
    exec(compile("\n".join(textwrap.dedent(b) for b in blocks), "pipelines.rst", "exec"), namespace)  # noqa: S102
    assert list(namespace["recs"].columns) == ["user", "item", "score", "rank"]
    assert 0 <= namespace["ndcg"] <= 1
    assert np.isfinite(namespace["search"].cv_results_["mean_test_score"]).all()
    assert set(namespace["scoring"]) == {"ndcg@20", "recall@20", "map@10"}


def test_similar_items_and_users_read_through_the_pipeline(data):
    """The pipeline's neighbours are the final step's on the rows the filter kept."""
    X, features = data
    pipe = make_pipeline(KCoreFilter(2, 2), UltraGCNRecommender(**TINY)).fit(X, item_features=features)
    final = pipe.steps[-1][1]
    items, users = final.item_ids_[:3], final.user_ids_[:2]
    pd.testing.assert_frame_equal(pipe.similar_items(items, n=4), final.similar_items(items, n=4))
    pd.testing.assert_frame_equal(pipe.similar_users(users, n=4), final.similar_users(users, n=4))
    kept, _ = KCoreFilter(2, 2).fit_resample(X)
    bare = UltraGCNRecommender(**TINY).fit(kept, item_features=features)
    pd.testing.assert_frame_equal(pipe.similar_items(items, n=4), bare.similar_items(items, n=4))
    # A final step without neighbours: the methods are not there.
    assert not hasattr(make_pipeline(KCoreFilter(), _NoNeighbours()), "similar_items")
    with pytest.raises(NotFittedError):
        make_pipeline(KCoreFilter(2, 2), UltraGCNRecommender(**TINY)).similar_users(users)


class _NoNeighbours(BaseEstimator):
    def fit(self, X, y=None):
        return self
