"""Tests of invrec.metrics: array metrics, evaluate_ranking and the ranking scorer."""

import pickle
import warnings

import numpy as np
import pandas as pd
import pytest
import scipy.sparse as sp
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp
from sklearn.base import BaseEstimator
from sklearn.metrics import ndcg_score
from sklearn.model_selection import GridSearchCV, KFold

from invrec.metrics import (
    METRIC_NAMES,
    evaluate_ranking,
    hit_rate_at_k,
    make_ranking_scorer,
    map_at_k,
    mrr_at_k,
    ndcg_at_k,
    ndcg_legacy_at_k,
    precision_at_k,
    recall_at_k,
)
from invrec.utils.ranking import top_k
from invrec.utils.validation import check_interactions

ARRAY_METRICS = {
    "recall": recall_at_k,
    "precision": precision_at_k,
    "ndcg": ndcg_at_k,
    "ndcg_legacy": ndcg_legacy_at_k,
    "hit_rate": hit_rate_at_k,
    "mrr": mrr_at_k,
    "map": map_at_k,
}
FAST = settings(max_examples=60, deadline=None)
nan = np.nan
log2 = np.log2

# --------------------------------------------------------------------------------------------
# Hand-computed values
# --------------------------------------------------------------------------------------------

# Four users over 10 items. User 2 has no relevant item (skipped); user 1's list is padded.
RANKINGS = np.array([
    [2, 0, 5, 1],
    [3, 4, -1, -1],
    [1, 0, 2, 3],
    [6, 7, 8, 9],
])
RELEVANT = [np.array([0, 1, 7]), np.array([4, 9]), np.array([], dtype=int), np.array([0])]

# k = 3: user 0 hits item 0 at rank 2 (|rel| = 3), user 1 hits item 4 at rank 2 (|rel| = 2),
# user 3 hits nothing.
EXPECTED_K3 = {
    "recall": [1 / 3, 1 / 2, nan, 0],
    "precision": [1 / 3, 1 / 3, nan, 0],
    # ideal DCG over min(3, |rel|) positions: 3 for user 0, 2 for user 1
    "ndcg": [
        (1 / log2(3)) / (1 / log2(2) + 1 / log2(3) + 1 / log2(4)),
        (1 / log2(3)) / (1 / log2(2) + 1 / log2(3)),
        nan,
        0,
    ],
    # legacy: ideal DCG over min(hits, k) = 1 position for users 0 and 1
    "ndcg_legacy": [(1 / log2(3)) / (1 / log2(2)), (1 / log2(3)) / (1 / log2(2)), nan, 0],
    "hit_rate": [1, 1, nan, 0],
    "mrr": [1 / 2, 1 / 2, nan, 0],
    # MAP: precision@2 = 1/2 at the single hit, divided by min(3, |rel|)
    "map": [(1 / 2) / 3, (1 / 2) / 2, nan, 0],
}
# k = 4 (= L): user 0 now also hits item 1 at rank 4.
EXPECTED_K4 = {
    "recall": [2 / 3, 1 / 2, nan, 0],
    "precision": [2 / 4, 1 / 4, nan, 0],
    "ndcg": [
        (1 / log2(3) + 1 / log2(5)) / (1 / log2(2) + 1 / log2(3) + 1 / log2(4)),
        (1 / log2(3)) / (1 / log2(2) + 1 / log2(3)),
        nan,
        0,
    ],
    "ndcg_legacy": [
        (1 / log2(3) + 1 / log2(5)) / (1 / log2(2) + 1 / log2(3)),
        (1 / log2(3)) / (1 / log2(2)),
        nan,
        0,
    ],
    "hit_rate": [1, 1, nan, 0],
    "mrr": [1 / 2, 1 / 2, nan, 0],
    # user 0: precision@2 = 1/2 and precision@4 = 2/4 at its hits
    "map": [(1 / 2 + 2 / 4) / 3, (1 / 2) / 2, nan, 0],
}
# k = 6 > L = 4: only 4 positions exist; precision still divides by 6.
EXPECTED_K6 = dict(EXPECTED_K4, precision=[2 / 6, 1 / 6, nan, 0])


@pytest.mark.parametrize("k, expected", [(3, EXPECTED_K3), (4, EXPECTED_K4), (6, EXPECTED_K6)])
@pytest.mark.parametrize("name", METRIC_NAMES)
def test_hand_computed_values(name, k, expected):
    per_user = ARRAY_METRICS[name](RANKINGS, RELEVANT, k, average=False)
    np.testing.assert_allclose(per_user, expected[name], rtol=0, atol=1e-12)
    mean = ARRAY_METRICS[name](RANKINGS, RELEVANT, k)
    assert isinstance(mean, float)
    assert mean == pytest.approx(np.nanmean(expected[name]), abs=1e-12)


def test_skipped_users_are_nan_and_excluded_from_the_mean():
    per_user = recall_at_k(RANKINGS, RELEVANT, 3, average=False)
    assert np.isnan(per_user).tolist() == [False, False, True, False]
    # mean over the 3 evaluated users, not 4
    assert recall_at_k(RANKINGS, RELEVANT, 3) == pytest.approx((1 / 3 + 1 / 2 + 0) / 3)


def test_no_evaluated_user_gives_nan_without_warning():
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        for func in ARRAY_METRICS.values():
            assert np.isnan(func(RANKINGS[:1], [np.array([], dtype=int)], 2))


def test_padding_never_hits_and_repeated_items_count_once():
    rankings = np.array([[-1, -1, 0], [1, 1, 1]])
    relevant = [np.array([0, 5]), np.array([1, 2])]
    # user 0: hit at rank 3 only; user 1: item 1 counts once, at rank 1
    np.testing.assert_allclose(recall_at_k(rankings, relevant, 3, average=False), [1 / 2, 1 / 2])
    np.testing.assert_allclose(precision_at_k(rankings, relevant, 3, average=False), [1 / 3, 1 / 3])
    np.testing.assert_allclose(mrr_at_k(rankings, relevant, 3, average=False), [1 / 3, 1])
    np.testing.assert_allclose(map_at_k(rankings, relevant, 3, average=False), [(1 / 3) / 2, 1 / 2])


def test_empty_rankings_score_zero():
    rankings = np.empty((2, 0), dtype=np.int64)
    relevant = [np.array([0]), np.array([1, 2])]
    for func in ARRAY_METRICS.values():
        np.testing.assert_array_equal(func(rankings, relevant, 5, average=False), [0.0, 0.0])


def _relevant_forms(dense):
    """The same relevance as a sparse matrix, a dense 0/1 array, a bool array and index lists."""
    return [
        sp.csr_matrix(dense.astype(int)),
        sp.coo_array(dense.astype(float)),
        dense.astype(int),
        dense.astype(bool),
        [np.flatnonzero(row) for row in dense],
        tuple(list(np.flatnonzero(row)) for row in dense),
    ]


@pytest.mark.parametrize("name", METRIC_NAMES)
def test_relevant_input_forms_agree(name):
    dense = np.zeros((4, 10), dtype=bool)
    for user, items in enumerate(RELEVANT):
        dense[user, items] = True
    func = ARRAY_METRICS[name]
    results = [func(RANKINGS, rel, 4, average=False) for rel in _relevant_forms(dense)]
    for result in results[1:]:
        np.testing.assert_array_equal(result, results[0])
    np.testing.assert_allclose(results[0], EXPECTED_K4[name], atol=1e-12)


def test_relevant_narrower_than_the_ranked_items():
    # item 7 lies beyond the relevance matrix's columns: it is simply not relevant
    rel = sp.csr_array(np.array([[1, 0, 0]]))
    assert recall_at_k(np.array([[7, 0]]), rel, 2) == 1.0
    assert precision_at_k(np.array([[7, 2]]), rel, 2) == 0.0


# --------------------------------------------------------------------------------------------
# Validation
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "rankings, relevant, k, match",
    [
        (np.array([0, 1]), [np.array([0])], 2, "2-D"),
        (np.array([[0.0, 1.0]]), [np.array([0])], 2, "integer item indices"),
        (np.array([[0, -2]]), [np.array([0])], 2, "padding"),
        (np.array([[0, 1]]), [np.array([0]), np.array([1])], 2, "has 2 rows but rankings has 1"),
        (np.array([[0, 1]]), np.ones((2, 3), bool), 2, "has 2 rows"),
        (np.array([[0, 1]]), [np.array([0])], 0, "positive"),
        (np.array([[0, 1]]), [np.array([0])], 1.5, "positive int"),
        (np.array([[0, 1]]), [np.array([0])], True, "positive int"),
        (np.array([[0, 1]]), np.array([[3, 5]]), 2, "boolean or hold only 0 and 1"),
        (np.array([[0, 1]]), [0], 2, "one 1-D array of item indices per user"),
        (np.array([[0, 1]]), np.array([0, 1]), 2, "must be 2-D"),
        (np.array([[0, 1]]), [np.array([-1])], 2, ">= 0"),
        (np.array([[0, 1]]), [np.array([0.5])], 2, "must be integers"),
        (np.array([[0, 1]]), "abc", 2, "scipy sparse"),
    ],
)
def test_bad_array_inputs_raise(rankings, relevant, k, match):
    with pytest.raises(ValueError, match=match):
        recall_at_k(rankings, relevant, k)


# --------------------------------------------------------------------------------------------
# Agreement with scikit-learn and properties
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize("seed", range(8))
@pytest.mark.parametrize("k", [1, 3, 7, 15, 40])
def test_ndcg_matches_sklearn(seed, k):
    rng = np.random.default_rng(seed)
    n_users, n_items = 25, 15
    y_true = rng.random((n_users, n_items)) < rng.uniform(0.05, 0.5)
    y_true[np.arange(n_users), rng.integers(0, n_items, n_users)] = True  # >= 1 relevant each
    y_score = rng.random((n_users, n_items))  # continuous: no ties
    rankings = np.argsort(-y_score, axis=1)
    expected = ndcg_score(y_true.astype(int), y_score, k=k)
    assert ndcg_at_k(rankings, y_true, k) == pytest.approx(expected, abs=1e-10, rel=0)
    # only the first k positions matter
    assert ndcg_at_k(rankings[:, :k], y_true, k) == pytest.approx(expected, abs=1e-10, rel=0)


@st.composite
def ranking_cases(draw):
    """Random rankings (distinct items per row, trailing -1 padding), relevance and k."""
    n_users = draw(st.integers(1, 5))
    n_items = draw(st.integers(1, 8))
    length = draw(st.integers(0, n_items))
    rows = [draw(st.permutations(range(n_items)))[:length] for _ in range(n_users)]
    rankings = np.array(rows, dtype=np.int64).reshape(n_users, length)
    n_pad = draw(hnp.arrays(np.int64, n_users, elements=st.integers(0, length)))
    rankings[np.arange(length) >= (length - n_pad)[:, None]] = -1
    relevant = draw(hnp.arrays(bool, (n_users, n_items)))
    k = draw(st.integers(1, n_items + 2))
    return rankings, relevant, k


@FAST
@given(ranking_cases())
def test_metrics_lie_in_unit_interval_and_skip_exactly_the_empty_users(case):
    rankings, relevant, k = case
    skipped = ~relevant.any(axis=1)
    for func in ARRAY_METRICS.values():
        values = func(rankings, relevant, k, average=False)
        assert np.array_equal(np.isnan(values), skipped)
        assert np.all((values[~skipped] >= 0) & (values[~skipped] <= 1 + 1e-12))


@FAST
@given(ranking_cases())
def test_recall_is_monotone_in_k(case):
    rankings, relevant, k = case
    low = recall_at_k(rankings, relevant, k, average=False)
    high = recall_at_k(rankings, relevant, k + 1, average=False)
    evaluated = relevant.any(axis=1)
    assert np.all(high[evaluated] >= low[evaluated])


@FAST
@given(ranking_cases())
def test_perfect_ranking(case):
    _, relevant, k = case
    rankings = np.argsort(~relevant, axis=1, kind="stable")  # relevant items first
    n_rel = relevant.sum(axis=1)
    evaluated = n_rel > 0
    recall = recall_at_k(rankings, relevant, k, average=False)
    n_eval = n_rel[evaluated]
    np.testing.assert_allclose(recall[evaluated], np.minimum(k, n_eval) / n_eval)
    np.testing.assert_allclose(ndcg_at_k(rankings, relevant, k, average=False)[evaluated], 1.0)
    np.testing.assert_allclose(map_at_k(rankings, relevant, k, average=False)[evaluated], 1.0)


@FAST
@given(ranking_cases())
def test_legacy_ndcg_is_at_least_standard_ndcg(case):
    rankings, relevant, k = case
    legacy = ndcg_legacy_at_k(rankings, relevant, k, average=False)
    standard = ndcg_at_k(rankings, relevant, k, average=False)
    evaluated = relevant.any(axis=1)
    assert np.all(legacy[evaluated] >= standard[evaluated] - 1e-12)


@FAST
@given(ranking_cases())
def test_inputs_are_not_modified(case):
    rankings, relevant, k = case
    forms = _relevant_forms(relevant)
    snapshots = [f.copy() if hasattr(f, "copy") else [np.array(a) for a in f] for f in forms]
    ranking_copy = rankings.copy()
    for form in forms:
        for func in ARRAY_METRICS.values():
            func(rankings, form, k)
    np.testing.assert_array_equal(rankings, ranking_copy)
    for form, snap in zip(forms, snapshots):
        if sp.issparse(form):
            assert (form != snap).nnz == 0
            np.testing.assert_array_equal(form.data, snap.data)
        elif isinstance(form, np.ndarray):
            np.testing.assert_array_equal(form, snap)
        else:
            for a, b in zip(form, snap):
                np.testing.assert_array_equal(a, b)


def test_unsorted_sparse_input_is_not_sorted_in_place():
    rel = sp.csr_matrix((np.array([1, 1]), np.array([3, 0]), np.array([0, 2])), shape=(1, 4))
    assert not rel.has_sorted_indices
    assert recall_at_k(np.array([[0, 3]]), rel, 2) == 1.0
    np.testing.assert_array_equal(rel.indices, [3, 0])


# --------------------------------------------------------------------------------------------
# evaluate_ranking
# --------------------------------------------------------------------------------------------


def _to_long(rankings, user_ids, item_ids):
    """Long (user, item, rank) frame of an index rankings matrix, padding dropped."""
    n_users, length = rankings.shape
    frame = pd.DataFrame({
        "user": np.repeat(user_ids, length),
        "item": item_ids[rankings.ravel()],
        "rank": np.tile(np.arange(1, length + 1), n_users),
        "score": -np.tile(np.arange(length, dtype=float), n_users),
    })
    return frame[rankings.ravel() >= 0]


@pytest.mark.parametrize("seed", range(3))
def test_evaluate_ranking_matches_array_metrics(seed):
    rng = np.random.default_rng(seed)
    n_users, n_items, length = 30, 20, 12
    rankings = np.argsort(rng.random((n_users, n_items)), axis=1)[:, :length]
    rankings[rng.random((n_users, length)) < 0.1] = -1  # some holes
    rankings[:, 0] = np.abs(rankings[:, 0])  # every user keeps at least one recommendation
    relevant = rng.random((n_users, n_items)) < 0.15
    user_ids = np.array([f"user{u}" for u in range(n_users)])
    item_ids = np.array([f"item{i}" for i in range(n_items)])
    users, items = np.nonzero(relevant)
    held_out = pd.DataFrame({"user": user_ids[users], "item": item_ids[items]}).sample(
        frac=1.0, random_state=seed)
    ks = (1, 5, 12, 20)
    result = evaluate_ranking(_to_long(rankings, user_ids, item_ids), held_out, k=ks,
                              metrics=METRIC_NAMES)
    assert list(result.index) == ["all"]
    assert list(result.columns) == [f"{m}@{k}" for m in METRIC_NAMES for k in ks] + [
        "n_users", "n_skipped"]
    for name, func in ARRAY_METRICS.items():
        for k in ks:
            assert result.loc["all", f"{name}@{k}"] == pytest.approx(
                func(rankings, relevant, k), abs=1e-12)
    assert result.loc["all", "n_users"] == relevant.any(axis=1).sum()
    assert result.loc["all", "n_skipped"] == (~relevant.any(axis=1)).sum()


RECS = pd.DataFrame({
    "user": ["a", "a", "a", "b", "b", "d"],
    "item": ["x", "y", "z", "y", "x", "x"],
    "rank": [1, 2, 3, 1, 2, 1],
    "score": [3.0, 2.0, 1.0, 2.0, 1.0, 1.0],
})
HELD_OUT = pd.DataFrame({
    "user": ["a", "a", "b", "c"],
    "item": ["x", "z", "x", "y"],
    "environment": [0, 1, 1, 0],
})


def test_evaluate_ranking_string_ids_by_hand():
    result = evaluate_ranking(RECS, HELD_OUT, k=[2, 3], metrics=["recall", "ndcg", "hit_rate"])
    row = result.loc["all"]
    # a: rel {x, z}, list [x, y, z]; b: rel {x}, list [y, x]; c: rel {y}, no list (scores 0);
    # d: no relevant item (skipped).
    assert row["recall@2"] == pytest.approx((1 / 2 + 1 + 0) / 3)
    assert row["recall@3"] == pytest.approx((1 + 1 + 0) / 3)
    assert row["hit_rate@2"] == pytest.approx(2 / 3)
    assert row["ndcg@2"] == pytest.approx((1 / (1 + 1 / log2(3)) + 1 / log2(3) + 0) / 3)
    assert row["ndcg@3"] == pytest.approx(
        ((1 + 1 / log2(4)) / (1 + 1 / log2(3)) + 1 / log2(3) + 0) / 3)
    assert (row["n_users"], row["n_skipped"]) == (3, 1)
    assert str(result["n_users"].dtype) == "Int64"


def test_evaluate_ranking_group_breakdown_and_worst_by_hand():
    result = evaluate_ranking(RECS, HELD_OUT, k=[2, 3], metrics=["recall", "ndcg"],
                              group="environment")
    assert list(result.index) == ["all", 0, 1, "worst"]
    # environment 0: a rel {x} (rank 1), c rel {y} (no list); b and d skipped
    env0 = {"recall@2": (1 + 0) / 2, "recall@3": (1 + 0) / 2,
            "ndcg@2": (1 + 0) / 2, "ndcg@3": (1 + 0) / 2}
    # environment 1: a rel {z} (rank 3), b rel {x} (rank 2); c and d skipped
    env1 = {"recall@2": (0 + 1) / 2, "recall@3": (1 + 1) / 2,
            "ndcg@2": (0 + 1 / log2(3)) / 2, "ndcg@3": (1 / log2(4) + 1 / log2(3)) / 2}
    for column in env0:
        assert result.loc[0, column] == pytest.approx(env0[column])
        assert result.loc[1, column] == pytest.approx(env1[column])
        # the worst row is the column-wise minimum: ndcg@2 comes from env 1, recall@3 from env 0
        assert result.loc["worst", column] == pytest.approx(min(env0[column], env1[column]))
    assert result.loc["worst", "ndcg@2"] == pytest.approx(env1["ndcg@2"])
    assert result.loc["worst", "recall@3"] == pytest.approx(env0["recall@3"])
    assert (result.loc[0, "n_users"], result.loc[0, "n_skipped"]) == (2, 2)
    assert (result.loc[1, "n_users"], result.loc[1, "n_skipped"]) == (2, 2)
    assert result.loc["worst", ["n_users", "n_skipped"]].isna().all()
    # the "all" row ignores the grouping
    plain = evaluate_ranking(RECS, HELD_OUT, k=[2, 3], metrics=["recall", "ndcg"])
    pd.testing.assert_series_equal(result.loc["all"], plain.loc["all"], check_names=False)


def test_evaluate_ranking_accepts_int_ids_arrays_and_scalar_k():
    recs = pd.DataFrame({"user": [10, 10, 20], "item": [1, 2, 1], "rank": [1, 2, 1]})
    held_out = np.array([[10, 2], [20, 3], [30, 1]])
    result = evaluate_ranking(recs, held_out, k=2, metrics="mrr")
    # user 10: item 2 at rank 2; user 20: miss; user 30: no list
    assert list(result.columns) == ["mrr@2", "n_users", "n_skipped"]
    assert result.loc["all", "mrr@2"] == pytest.approx((1 / 2 + 0 + 0) / 3)
    # a duplicated held-out row does not count twice
    doubled = evaluate_ranking(recs, np.vstack([held_out, held_out[:1]]), k=2, metrics="recall")
    assert doubled.loc["all", "recall@2"] == pytest.approx((1 + 0 + 0) / 3)


def test_evaluate_ranking_ranks_beyond_k_and_gaps():
    recs = pd.DataFrame({"user": ["u", "u"], "item": ["x", "y"], "rank": [3, 7]})
    held_out = pd.DataFrame({"user": ["u", "u"], "item": ["x", "y"]})
    result = evaluate_ranking(recs, held_out, k=[2, 3, 10], metrics=["recall"])
    assert result.loc["all", ["recall@2", "recall@3", "recall@10"]].tolist() == [0.0, 0.5, 1.0]
    # ranks beyond the largest k are ignored
    assert evaluate_ranking(recs, held_out, k=4, metrics="recall").loc["all", "recall@4"] == 0.5


def test_evaluate_ranking_empty_recommendations():
    recs = pd.DataFrame({"user": [], "item": [], "rank": []})
    result = evaluate_ranking(recs, pd.DataFrame({"user": [1], "item": [2]}), k=5)
    assert result.loc["all", "recall@5"] == 0.0
    assert result.loc["all", "n_users"] == 1


@pytest.mark.parametrize(
    "recs, kwargs, match",
    [
        (RECS, {"metrics": ["recall", "auc"]}, "valid names are"),
        (RECS, {"metrics": []}, "metrics is empty"),
        (RECS, {"k": 0}, "positive"),
        (RECS, {"k": []}, "k is empty"),
        (RECS, {"k": "10"}, "positive int"),
        (RECS, {"group": "env"}, "not a column of relevant"),
        (RECS.assign(rank=[1, 1, 2, 1, 2, 1]), {}, "duplicated"),
        (RECS.assign(rank=[0, 1, 2, 1, 2, 1]), {}, "positive integers"),
        (RECS.assign(rank=[1.5, 2, 3, 1, 2, 1]), {}, "positive integers"),
        (RECS.drop(columns="rank"), {}, "lacks the column"),
    ],
)
def test_evaluate_ranking_bad_inputs_raise(recs, kwargs, match):
    with pytest.raises(ValueError, match=match):
        evaluate_ranking(recs, HELD_OUT, **kwargs)


def test_evaluate_ranking_rejects_group_values_clashing_with_row_names():
    held_out = HELD_OUT.assign(environment=["all", "b", "b", "b"])
    with pytest.raises(ValueError, match="clash"):
        evaluate_ranking(RECS, held_out, group="environment")


def test_evaluate_ranking_rejects_non_frames():
    with pytest.raises(TypeError, match="DataFrame"):
        evaluate_ranking(RECS.to_numpy(), HELD_OUT)


# --------------------------------------------------------------------------------------------
# Scorer with a fake estimator
# --------------------------------------------------------------------------------------------

USERS = np.array(["u1", "u2", "u3"])
ITEMS = np.array(["a", "b", "c", "d", "e"])
SCORES = np.array([
    [5.0, 4.0, 3.0, 2.0, 1.0],
    [1.0, 5.0, 4.0, 3.0, 2.0],
    [2.0, 1.0, 5.0, 4.0, 3.0],
])
# d and e have no training interaction: they are the unseen items.
TRAIN = pd.DataFrame({"user": ["u1", "u2", "u3", "u1"], "item": ["a", "b", "c", "c"]})
TEST = pd.DataFrame({"user": ["u1", "u2", "u3"], "item": ["b", "e", "d"]})


class FakeRecommender(BaseEstimator):
    """Fixed scores over a small raw catalog; ``flip=True`` reverses them (a bad model)."""

    def __init__(self, flip=False, users=USERS, items=ITEMS, scores=SCORES):
        self.flip = flip
        self.users = users
        self.items = items
        self.scores = scores

    def fit(self, X, y=None):
        table, _ = check_interactions(X, y)
        self.user_index_ = pd.Index(self.users)
        self.item_index_ = pd.Index(self.items)
        rows = self.user_index_.get_indexer(table["user"])
        cols = self.item_index_.get_indexer(table["item"])
        self.seen_ = sp.csr_array((np.ones(len(rows)), (rows, cols)),
                                  shape=(len(self.users), len(self.items)))
        self.unseen_items_ = np.asarray(self.items)[self.seen_.sum(axis=0) == 0]
        self.calls_ = []
        return self

    def recommend(self, users, n=10, *, exclude_seen=True, items=None):
        self.calls_.append({"users": list(users), "n": n, "exclude_seen": exclude_seen,
                            "items": None if items is None else list(items)})
        rows = self.user_index_.get_indexer(users)
        scores = -self.scores[rows] if self.flip else self.scores[rows]
        candidates = None if items is None else self.item_index_.isin(items)
        exclude = self.seen_[rows] if exclude_seen else None
        idx, values = top_k(scores, n, exclude=exclude, candidates=candidates)
        keep = idx.ravel() >= 0
        return pd.DataFrame({
            "user": np.repeat(np.asarray(users), idx.shape[1])[keep],
            "item": np.asarray(self.items)[idx.ravel()][keep],
            "score": values.ravel()[keep],
            "rank": np.tile(np.arange(1, idx.shape[1] + 1), len(rows))[keep],
        })


def test_fake_estimator_protocol():
    model = FakeRecommender().fit(TRAIN)
    assert list(model.unseen_items_) == ["d", "e"]
    recs = model.recommend(["u1"], n=2)
    assert recs["item"].tolist() == ["b", "d"]  # a and c are seen
    assert recs["rank"].tolist() == [1, 2]


def test_scorer_all_candidates_and_call_arguments():
    model = FakeRecommender().fit(TRAIN)
    # top-1 without seen items: u1 -> b (hit), u2 -> c (miss, wants e), u3 -> d (hit)
    assert make_ranking_scorer("recall", k=1)(model, TEST) == pytest.approx(2 / 3)
    call = model.calls_[-1]
    assert call == {"users": ["u1", "u2", "u3"], "n": 1, "exclude_seen": True, "items": None}


def test_scorer_passes_exclude_seen_through():
    model = FakeRecommender().fit(TRAIN)
    # with seen items allowed, the top-1 items are a, b, c: all misses
    score = make_ranking_scorer("recall", k=1, exclude_seen=False)(model, TEST)
    assert score == 0.0
    assert model.calls_[-1]["exclude_seen"] is False


def test_scorer_unseen_candidates_restrict_to_new_items():
    model = FakeRecommender().fit(TRAIN)
    scorer = make_ranking_scorer("recall", k=1, candidates="unseen")
    # among {d, e}: u1 -> d (miss), u2 -> d (miss), u3 -> d (hit)
    assert scorer(model, TEST) == pytest.approx(1 / 3)
    assert model.calls_[-1]["items"] == ["d", "e"]
    recs = model.recommend(["u1", "u2", "u3"], n=5, items=model.unseen_items_)
    assert set(recs["item"]) <= {"d", "e"}


def test_scorer_explicit_candidate_ids():
    model = FakeRecommender().fit(TRAIN)
    scorer = make_ranking_scorer("recall", k=1, candidates=["b", "e"])
    # u1 -> b (hit), u2 -> e (b is seen; hit), u3 -> e (miss, wants d)
    assert scorer(model, TEST) == pytest.approx(2 / 3)
    assert model.calls_[-1]["items"] == ["b", "e"]


def test_scorer_drops_non_positive_targets_and_keeps_user_order():
    model = FakeRecommender().fit(TRAIN)
    X = TEST.iloc[[2, 1, 0]]
    scorer = make_ranking_scorer("recall", k=1)
    # u2's row has y = 0: only u3 (d, hit) and u1 (b, hit) remain
    assert scorer(model, X, np.array([1.0, 0.0, 2.0])) == 1.0
    assert model.calls_[-1]["users"] == ["u3", "u1"]
    with pytest.raises(ValueError, match="no relevant interaction"):
        scorer(model, X, np.zeros(3))


def test_scorer_returns_python_float_for_every_metric():
    model = FakeRecommender().fit(TRAIN)
    for name in METRIC_NAMES:
        value = make_ranking_scorer(name, k=2)(model, TEST.to_numpy())
        assert type(value) is float and 0.0 <= value <= 1.0


def test_scorer_unseen_needs_the_attribute():
    class NoUnseen(FakeRecommender):
        def fit(self, X, y=None):
            super().fit(X, y)
            del self.unseen_items_
            return self

    with pytest.raises(AttributeError, match="unseen_items_"):
        make_ranking_scorer(candidates="unseen")(NoUnseen().fit(TRAIN), TEST)


def test_scorer_repr_and_pickle():
    scorer = make_ranking_scorer("map", k=3, candidates="unseen", exclude_seen=False)
    assert repr(scorer) == (
        "make_ranking_scorer(metric='map', k=3, candidates='unseen', exclude_seen=False)")
    assert "<2 item ids>" in repr(make_ranking_scorer(candidates=np.array(["b", "e"])))
    model = FakeRecommender().fit(TRAIN)
    for original in (make_ranking_scorer("recall", 1), make_ranking_scorer(candidates=["b", "e"])):
        clone = pickle.loads(pickle.dumps(original))
        assert repr(clone) == repr(original)
        assert clone(model, TEST) == original(model, TEST)


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"metric": "auc"}, "valid names are"),
        ({"metric": ["ndcg"]}, "one metric name"),
        ({"k": 0}, "positive"),
        ({"k": 2.5}, "positive int"),
        ({"candidates": "new"}, "'all', 'unseen'"),
        ({"candidates": []}, "non-empty 1-D"),
        ({"candidates": [["a"]]}, "non-empty 1-D"),
        ({"candidates": ["a", None]}, "missing"),
        ({"exclude_seen": "yes"}, "True or False"),
    ],
)
def test_scorer_bad_arguments_raise_at_creation(kwargs, match):
    with pytest.raises(ValueError, match=match):
        make_ranking_scorer(**kwargs)


def _grid_data():
    """Six users, twelve items; each user interacted with their six best-scored items."""
    rng = np.random.default_rng(0)
    scores = rng.random((6, 12))
    users = np.array([f"user{u}" for u in range(6)])
    items = np.array([f"item{i}" for i in range(12)])
    best = np.argsort(-scores, axis=1)[:, :6]
    X = pd.DataFrame({"user": np.repeat(users, 6), "item": items[best.ravel()]})
    return X, FakeRecommender(users=users, items=items, scores=scores)


@pytest.mark.parametrize("cv_kind", ["kfold", "list"])
def test_grid_search_picks_the_better_model(cv_kind):
    X, model = _grid_data()
    kfold = KFold(3, shuffle=True, random_state=0)
    cv = kfold if cv_kind == "kfold" else list(kfold.split(X))
    search = GridSearchCV(model, {"flip": [True, False]}, scoring=make_ranking_scorer("ndcg", k=3),
                          cv=cv, n_jobs=1, error_score="raise")
    search.fit(X)
    assert search.best_params_ == {"flip": False}
    # the good model ranks every held-out item above the unseen bad ones: perfect NDCG
    assert search.best_score_ == pytest.approx(1.0)
    assert search.cv_results_["mean_test_score"][0] < 0.5


def test_grid_search_multi_metric():
    X, model = _grid_data()
    scoring = {"ndcg": make_ranking_scorer("ndcg", k=3),
               "recall": make_ranking_scorer("recall", k=2)}
    search = GridSearchCV(model, {"flip": [True, False]}, scoring=scoring, refit="recall",
                          cv=KFold(2), n_jobs=1, error_score="raise")
    search.fit(X)
    assert search.best_params_ == {"flip": False}
    results = search.cv_results_
    assert results["mean_test_ndcg"][1] == pytest.approx(1.0)
    assert results["mean_test_recall"][1] > results["mean_test_recall"][0]
