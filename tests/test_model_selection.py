"""Tests of invrec.model_selection: splitting properties, determinism, sklearn integration, errors."""

import math

import numpy as np
import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sklearn.base import BaseEstimator
from sklearn.model_selection import GridSearchCV, cross_validate

import invrec.model_selection as ms
from invrec.model_selection import (
    EnvironmentSplit,
    LeaveLastOut,
    NewItemSplit,
    PerUserHoldout,
    train_test_split,
)

PROPS = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])


# ---------------------------------------------------------------------------------------------
# data
# ---------------------------------------------------------------------------------------------


@st.composite
def tables(draw, max_rows=40):
    """Random interaction tables: unique (user, item) pairs, tied timestamps, 3 environments.

    Ids are ints or strings; the index is shuffled labels so positional and label indexing differ.
    """
    pairs = draw(
        st.lists(
            st.tuples(st.integers(0, 7), st.integers(0, 11)),
            min_size=1, max_size=max_rows, unique=True,
        )
    )
    n = len(pairs)
    times = draw(st.lists(st.integers(0, 4), min_size=n, max_size=n))
    envs = draw(st.lists(st.sampled_from(["a", "b", "c"]), min_size=n, max_size=n))
    strings = draw(st.booleans())
    users = np.array([p[0] for p in pairs])
    items = np.array([p[1] for p in pairs])
    if strings:
        users = np.char.add("u", users.astype(str)).astype(object)
        items = np.char.add("i", items.astype(str)).astype(object)
    index = np.random.default_rng(n).permutation(n) + 100
    return pd.DataFrame(
        {"user": users, "item": items, "timestamp": times, "environment": envs}, index=index
    )


def big_table(n_users=60, n_items=40, seed=0):
    """A fixed table where every user has 3..15 interactions."""
    rng = np.random.default_rng(seed)
    sizes = rng.integers(3, 16, size=n_users)
    users = np.repeat(np.arange(n_users), sizes)
    items = np.concatenate([rng.choice(n_items, size=s, replace=False) for s in sizes])
    return pd.DataFrame(
        {
            "user": users,
            "item": items,
            "timestamp": rng.integers(0, 1000, size=len(users)),
            "environment": rng.choice(["x", "y", "z"], size=len(users)),
        }
    )


def round_half_up(x):
    return math.floor(x + 0.5 + 1e-9)


def check_partition(train, test, n, *, covers=True):
    assert train.dtype == np.int64 and test.dtype == np.int64
    assert np.all(np.diff(train) > 0) and np.all(np.diff(test) > 0)
    assert len(np.intersect1d(train, test)) == 0
    if covers:
        assert np.array_equal(np.union1d(train, test), np.arange(n))


def users_with_training_rows(X, train, test):
    test_users = set(X["user"].iloc[test])
    return test_users <= set(X["user"].iloc[train])


# ---------------------------------------------------------------------------------------------
# train_test_split properties
# ---------------------------------------------------------------------------------------------


@PROPS
@given(X=tables(), test_size=st.floats(0.05, 0.95), seed=st.integers(0, 2**16))
def test_train_test_split_random_partition(X, test_size, seed):
    n = len(X)
    if n < 2:
        with pytest.raises(ValueError, match="at least 2 interactions"):
            train_test_split(X, test_size=test_size, by="random", random_state=seed)
        return
    X_train, X_test = train_test_split(X, test_size=test_size, by="random", random_state=seed)
    assert set(X_train.index).isdisjoint(X_test.index)
    assert set(X_train.index) | set(X_test.index) == set(X.index)
    assert len(X_test) == min(max(round_half_up(test_size * n), 1), n - 1)
    assert list(X_train.columns) == list(X.columns)


@PROPS
@given(X=tables(), test_size=st.floats(0.05, 0.95), seed=st.integers(0, 2**16))
def test_train_test_split_user_rule(X, test_size, seed):
    counts = X["user"].value_counts()
    expected = np.minimum([round_half_up(test_size * c) for c in counts], counts - 1)
    expected = pd.Series(expected, index=counts.index)
    if expected.sum() == 0:
        with pytest.raises(ValueError, match="2 or more interactions|too small"):
            train_test_split(X, test_size=test_size, by="user", random_state=seed)
        return
    X_train, X_test = train_test_split(X, test_size=test_size, by="user", random_state=seed)
    assert set(X_train.index).isdisjoint(X_test.index)
    assert set(X_train.index) | set(X_test.index) == set(X.index)
    got = X_test["user"].value_counts().reindex(counts.index, fill_value=0)
    pd.testing.assert_series_equal(got, expected, check_names=False, check_dtype=False)
    # every test user keeps training rows; single-interaction users stay in training
    assert set(X_test["user"]) <= set(X_train["user"])
    assert not set(X_test["user"]) & set(counts[counts == 1].index)


@PROPS
@given(X=tables(), test_size=st.floats(0.05, 0.95), seed=st.integers(0, 2**16))
def test_train_test_split_item_is_new_item(X, test_size, seed):
    n_items = X["item"].nunique()
    if n_items < 2:
        with pytest.raises(ValueError, match="at least 2 distinct items"):
            train_test_split(X, test_size=test_size, by="item", random_state=seed)
        return
    X_train, X_test = train_test_split(X, test_size=test_size, by="item", random_state=seed)
    assert set(X_train.index).isdisjoint(X_test.index)
    assert set(X_train.index) | set(X_test.index) == set(X.index)
    assert set(X_train["item"]).isdisjoint(X_test["item"])
    assert X_test["item"].nunique() == max(1, int(test_size * n_items))


@PROPS
@given(X=tables(), test_size=st.floats(0.05, 0.95))
def test_train_test_split_time_latest_rows(X, test_size):
    n = len(X)
    if n < 2:
        return
    X_train, X_test = train_test_split(X, test_size=test_size, by="time")
    assert set(X_train.index).isdisjoint(X_test.index)
    assert set(X_train.index) | set(X_test.index) == set(X.index)
    assert len(X_test) == min(max(round_half_up(test_size * n), 1), n - 1)
    assert X_test["timestamp"].min() >= X_train["timestamp"].max()
    # ties at the boundary: the later rows (by position) go to test
    pos = pd.Series(np.arange(n), index=X.index)
    key_train = list(zip(X_train["timestamp"], pos[X_train.index]))
    key_test = list(zip(X_test["timestamp"], pos[X_test.index]))
    assert min(key_test) > max(key_train)


# ---------------------------------------------------------------------------------------------
# cross-validator properties
# ---------------------------------------------------------------------------------------------


@PROPS
@given(X=tables(), n_splits=st.integers(2, 6), seed=st.integers(0, 2**16))
def test_per_user_kfold_properties(X, n_splits, seed):
    cv = PerUserHoldout(n_splits=n_splits, random_state=seed)
    counts = X["user"].value_counts()
    eligible = np.flatnonzero(X["user"].map(counts).to_numpy() >= 2)
    if len(eligible) < n_splits:
        with pytest.raises(ValueError, match="2 or more interactions"):
            list(cv.split(X))
        return
    splits = list(cv.split(X))
    assert len(splits) == cv.get_n_splits(X) == n_splits
    tests = [test for _, test in splits]
    for train, test in splits:
        check_partition(train, test, len(X))  # train is the complement of the test fold
        assert len(test) > 0
        assert users_with_training_rows(X, train, test)
        per_user = X["user"].iloc[test].value_counts()
        assert (per_user <= np.ceil(counts[per_user.index] / n_splits)).all()
    all_tests = np.concatenate(tests)
    assert len(all_tests) == len(np.unique(all_tests))  # pairwise disjoint
    assert np.array_equal(np.sort(all_tests), eligible)  # union = rows of users with n_u >= 2
    sizes = [len(t) for t in tests]
    assert max(sizes) - min(sizes) <= 1


@PROPS
@given(X=tables(), n_splits=st.integers(1, 4), test_size=st.floats(0.1, 0.9),
       seed=st.integers(0, 2**16))
def test_per_user_holdout_mode_properties(X, n_splits, test_size, seed):
    cv = PerUserHoldout(n_splits=n_splits, test_size=test_size, random_state=seed)
    counts = X["user"].value_counts()
    n_test = sum(min(round_half_up(test_size * c), c - 1) for c in counts)
    if n_test == 0:
        with pytest.raises(ValueError, match="2 or more interactions|too small"):
            list(cv.split(X))
        return
    splits = list(cv.split(X))
    assert len(splits) == n_splits
    for train, test in splits:
        check_partition(train, test, len(X))
        assert len(test) == n_test
        assert users_with_training_rows(X, train, test)


@PROPS
@given(X=tables(), n_last=st.integers(1, 3))
def test_leave_last_out_properties(X, n_last):
    cv = LeaveLastOut(n_last=n_last)
    counts = X["user"].value_counts()
    if counts.max() <= n_last:
        with pytest.raises(ValueError, match="more than n_last"):
            list(cv.split(X))
        return
    [(train, test)] = list(cv.split(X))
    check_partition(train, test, len(X))
    assert users_with_training_rows(X, train, test)
    # reference: sort by (user, time, position), the last n_last per user with n_u > n_last
    ref = X.reset_index(drop=True).assign(pos=np.arange(len(X)))
    ref = ref.sort_values(["timestamp", "pos"], kind="stable")
    from_end = ref.groupby("user", sort=False).cumcount(ascending=False)
    n_u = ref["user"].map(counts)
    expected = np.sort(ref["pos"][(from_end < n_last) & (n_u > n_last)].to_numpy())
    assert np.array_equal(test, expected)
    # each test row is no earlier than any training row of its user
    train_max = X.iloc[train].groupby("user")["timestamp"].max()
    test_rows = X.iloc[test]
    assert (test_rows["timestamp"].to_numpy() >= train_max[test_rows["user"]].to_numpy()).all()


@PROPS
@given(X=tables(), test_size=st.floats(0.1, 0.9), validation=st.booleans(),
       seed=st.integers(0, 2**16))
def test_new_item_split_properties(X, test_size, validation, seed):
    cv = NewItemSplit(test_size=test_size, validation=validation, random_state=seed)
    n_items = X["item"].nunique()
    n_new = int(test_size * n_items)
    if n_new < (2 if validation else 1):
        with pytest.raises(ValueError, match="new item"):
            list(cv.split(X))
        return
    [(train, test)] = list(cv.split(X))
    new = cv.new_items(X)
    assert len(new["validation"]) == (n_new // 2 if validation else 0)
    assert len(new["validation"]) + len(new["test"]) == n_new
    train_items = set(X["item"].iloc[train])
    assert train_items.isdisjoint(new["test"]) and train_items.isdisjoint(new["validation"])
    assert set(X["item"].iloc[test]) == set(new["test"])
    check_partition(train, test, len(X), covers=not validation)
    if validation:
        [(train2, val, test2)] = list(cv.split_validation(X))
        assert np.array_equal(train, train2) and np.array_equal(test, test2)
        assert set(X["item"].iloc[val]) == set(new["validation"])
        everything = np.concatenate([train2, val, test2])
        assert np.array_equal(np.sort(everything), np.arange(len(X)))


@PROPS
@given(X=tables(), groups=st.lists(st.sampled_from(["a", "b", "c"]), min_size=1, max_size=2,
                                   unique=True))
def test_environment_split_properties(X, groups):
    present = set(X["environment"])
    cv = EnvironmentSplit(test_groups=groups)
    if not set(groups) <= present:
        with pytest.raises(ValueError, match="not found in column 'environment'"):
            list(cv.split(X))
        return
    if present <= set(groups):
        with pytest.raises(ValueError, match="training set would be empty"):
            list(cv.split(X))
        return
    [(train, test)] = list(cv.split(X))
    check_partition(train, test, len(X))
    assert np.array_equal(test, np.flatnonzero(X["environment"].isin(groups).to_numpy()))
    # leave-one-group-out over the sorted groups
    logo = EnvironmentSplit()
    splits = list(logo.split(X))
    assert logo.get_n_splits(X) == len(splits) == len(present)
    for group, (train, test) in zip(sorted(present), splits):
        check_partition(train, test, len(X))
        assert set(X["environment"].iloc[test]) == {group}
        assert group not in set(X["environment"].iloc[train])


# ---------------------------------------------------------------------------------------------
# determinism, inputs, outputs
# ---------------------------------------------------------------------------------------------


SEEDED = [
    PerUserHoldout(n_splits=3, random_state=0),
    PerUserHoldout(n_splits=2, test_size=0.3, random_state=0),
    NewItemSplit(test_size=0.2, validation=True, n_splits=2, random_state=0),
]


def as_lists(splits):
    return [[part.tolist() for part in split] for split in splits]


@pytest.mark.parametrize("cv", SEEDED, ids=repr)
def test_int_seed_is_deterministic_and_seeds_differ(cv):
    X = big_table()
    first, second = as_lists(cv.split(X)), as_lists(cv.split(X))
    assert first == second
    params = {k: getattr(cv, k) for k in ("n_splits", "test_size", "validation") if hasattr(cv, k)}
    other = type(cv)(**params, random_state=1)
    assert as_lists(other.split(X)) != first


@pytest.mark.parametrize("by", ["user", "item", "random"])
def test_train_test_split_seeds(by):
    X = big_table()
    a = train_test_split(X, by=by, random_state=3)
    b = train_test_split(X, by=by, random_state=3)
    c = train_test_split(X, by=by, random_state=4)
    assert a[1].index.equals(b[1].index)
    assert not a[1].index.equals(c[1].index)


def test_generator_random_state_advances():
    X = big_table()
    cv = PerUserHoldout(n_splits=2, random_state=np.random.default_rng(0))
    assert as_lists(cv.split(X)) != as_lists(cv.split(X))


def test_x_is_not_modified():
    X = big_table().iloc[::-1]
    X_copy = X.copy()
    arr = X[["user", "item"]].to_numpy()
    arr_copy = arr.copy()
    for by in ["user", "item", "time", "random"]:
        train_test_split(X, by=by, random_state=0)
    train_test_split(arr, by="user", random_state=0)
    for cv in [*SEEDED, LeaveLastOut(n_last=2), EnvironmentSplit(),
               EnvironmentSplit(test_groups="x")]:
        list(cv.split(X))
    list(NewItemSplit(validation=True, random_state=0).split_validation(X))
    pd.testing.assert_frame_equal(X, X_copy)
    np.testing.assert_array_equal(arr, arr_copy)


def test_ndarray_and_string_ids_with_y():
    X = big_table()
    arr = np.column_stack(
        [np.char.add("u", X["user"].astype(str).to_numpy()),
         np.char.add("i", X["item"].astype(str).to_numpy())]
    )
    y = np.arange(len(arr)) * 10
    X_train, X_test, y_train, y_test = train_test_split(arr, y, by="user", random_state=0)
    assert isinstance(X_train, np.ndarray) and X_train.shape[1] == 2
    assert X_train.dtype == arr.dtype
    assert len(X_train) + len(X_test) == len(arr)
    # y rows follow X rows
    pos_train, pos_test = y_train // 10, y_test // 10
    np.testing.assert_array_equal(X_train, arr[pos_train])
    np.testing.assert_array_equal(X_test, arr[pos_test])
    assert set(X_test[:, 0]) <= set(X_train[:, 0])
    # the same seed gives the same split on the DataFrame form with int ids (same row order)
    D_train, D_test = train_test_split(X, by="user", random_state=0)
    np.testing.assert_array_equal(D_test.index.to_numpy(), pos_test)


def test_dataframe_y_series_keeps_type():
    X = big_table()
    X.index = X.index * 2 + 7
    y = pd.Series(np.arange(len(X)), index=X.index)
    X_train, X_test, y_train, y_test = train_test_split(X, y, by="random", random_state=0)
    assert isinstance(y_train, pd.Series)
    assert X_train.index.equals(y_train.index) and X_test.index.equals(y_test.index)


def test_cv_accepts_ndarray_and_strings():
    X = big_table()
    arr = np.column_stack([X["user"].astype(str), X["item"].astype(str)]).astype(object)
    for cv in SEEDED[:2]:
        np.testing.assert_equal(as_lists(cv.split(arr)), as_lists(cv.split(X)))
    splits = list(NewItemSplit(random_state=0).split(arr))
    assert len(splits) == 1


def test_new_item_split_reproduces_recipe():
    rng = np.random.default_rng(42)
    items = np.array([f"item{k:05d}" for k in rng.permutation(1425)], dtype=object)
    users = rng.integers(0, 300, size=1425)
    extra = rng.integers(0, 1425, size=3000)
    X = pd.DataFrame({"user": np.concatenate([users, rng.integers(0, 300, size=3000)]),
                      "item": np.concatenate([items, items[extra]])})
    cv = NewItemSplit(test_size=0.2, validation=True, random_state=0)
    new = cv.new_items(X)
    expected = np.random.default_rng(0).permutation(np.sort(np.unique(items)))
    assert len(new["validation"]) == 142 and len(new["test"]) == 143
    np.testing.assert_array_equal(new["validation"], expected[:142])
    np.testing.assert_array_equal(new["test"], expected[142:285])
    train, val, test = next(cv.split_validation(X))
    assert set(X["item"].iloc[val]) == set(expected[:142])
    assert set(X["item"].iloc[test]) == set(expected[142:285])
    assert not set(X["item"].iloc[train]) & set(expected[:285])
    # train_test_split(by="item") draws the same new items with the same seed
    _, X_test = train_test_split(X, test_size=0.2, by="item", random_state=0)
    assert set(X_test["item"]) == set(expected[:285])


def test_new_item_split_folds_are_disjoint():
    X = big_table()
    cv = NewItemSplit(test_size=0.2, n_splits=5, random_state=0)
    news = [set(cv.new_items(X, fold=f)["test"]) for f in range(5)]
    assert sum(len(s) for s in news) == len(set().union(*news)) == 5 * int(0.2 * 40)
    first = NewItemSplit(test_size=0.2, random_state=0).new_items(X)["test"]
    assert news[0] == set(first)
    for f, (_, test) in enumerate(cv.split(X)):
        assert set(X["item"].iloc[test]) == news[f]
    with pytest.raises(ValueError, match="fold must be in 0..4"):
        cv.new_items(X, fold=5)


def test_leave_last_out_datetime_and_tie_order():
    X = pd.DataFrame({
        "user": ["a", "a", "a", "b", "b"],
        "item": [1, 2, 3, 1, 2],
        "timestamp": pd.to_datetime(["2020-01-02", "2020-01-02", "2020-01-01",
                                     "2020-01-01", "2020-01-01"]),
    })
    [(train, test)] = list(LeaveLastOut().split(X))
    assert test.tolist() == [1, 4]  # ties broken by row order: later row is later
    assert train.tolist() == [0, 2, 3]


def test_repr_and_all():
    assert repr(PerUserHoldout(n_splits=3, random_state=0)) == (
        "PerUserHoldout(n_splits=3, random_state=0, test_size=None)"
    )
    assert "NewItemSplit(" in repr(NewItemSplit()) and "validation=False" in repr(NewItemSplit())
    assert "time_column='timestamp'" in repr(LeaveLastOut())
    assert "column='environment'" in repr(EnvironmentSplit())
    assert set(ms.__all__) == {"train_test_split", "PerUserHoldout", "LeaveLastOut",
                               "NewItemSplit", "EnvironmentSplit"}


# ---------------------------------------------------------------------------------------------
# scikit-learn integration
# ---------------------------------------------------------------------------------------------


class PopularityScorer(BaseEstimator):
    """Trivial estimator: scores how popular (in training) the held-out items are."""

    def __init__(self, shrink=1.0):
        self.shrink = shrink

    def fit(self, X, y=None):
        assert isinstance(X, pd.DataFrame)
        self.counts_ = X["item"].value_counts()
        return self

    def score(self, X, y=None):
        assert isinstance(X, pd.DataFrame)
        counts = self.counts_.reindex(X["item"]).fillna(0).to_numpy()
        return float(np.mean(counts / (counts + self.shrink)))


@pytest.mark.parametrize(
    "cv, n_splits",
    [
        (PerUserHoldout(n_splits=3, random_state=0), 3),
        (PerUserHoldout(n_splits=2, test_size=0.25, random_state=0), 2),
        (NewItemSplit(test_size=0.2, n_splits=2, random_state=0), 2),
        (NewItemSplit(test_size=0.2, validation=True, random_state=0), 1),
        (EnvironmentSplit(), 3),
        (EnvironmentSplit(test_groups=["x"]), 1),
        (LeaveLastOut(), 1),
    ],
    ids=repr,
)
def test_sklearn_grid_search_and_cross_validate(cv, n_splits):
    X = big_table()
    search = GridSearchCV(PopularityScorer(), {"shrink": [0.5, 5.0]}, cv=cv).fit(X)
    assert search.n_splits_ == n_splits
    assert search.best_params_ == {"shrink": 0.5}
    assert np.isfinite(search.cv_results_["mean_test_score"]).all()
    result = cross_validate(PopularityScorer(), X, cv=cv, return_indices=True)
    assert len(result["test_score"]) == n_splits
    expected = list(cv.split(X))
    for got_train, got_test, (train, test) in zip(
        result["indices"]["train"], result["indices"]["test"], expected
    ):
        np.testing.assert_array_equal(got_train, train)
        np.testing.assert_array_equal(got_test, test)


# ---------------------------------------------------------------------------------------------
# errors
# ---------------------------------------------------------------------------------------------


def single_interaction_users():
    return pd.DataFrame({"user": [1, 2, 3], "item": [1, 2, 3], "timestamp": [1, 2, 3]})


@pytest.mark.parametrize(
    "kwargs, exc, match",
    [
        ({"by": "users"}, ValueError, r"by must be one of \['user', 'item', 'time', 'random'\]"),
        ({"test_size": 1.5}, ValueError, r"test_size must be a float in \(0, 1\)"),
        ({"test_size": 0}, ValueError, r"test_size must be a float in \(0, 1\)"),
        ({"test_size": "a"}, TypeError, "test_size must be a float"),
        ({"by": "time", "time_column": "ts"}, ValueError, "no time column 'ts'.*time_column="),
        ({"by": "user", "test_size": 0.01}, ValueError, "test_size=0.01 is too small"),
    ],
)
def test_train_test_split_bad_parameters(kwargs, exc, match):
    with pytest.raises(exc, match=match):
        train_test_split(big_table(), **kwargs)


def test_train_test_split_unsplittable():
    with pytest.raises(ValueError, match="no user has 2 or more interactions"):
        train_test_split(single_interaction_users(), by="user")
    with pytest.raises(ValueError, match="at least 2 distinct items"):
        train_test_split(pd.DataFrame({"user": [1, 2], "item": [5, 5]}), by="item")
    with pytest.raises(ValueError, match="no time column 'timestamp'"):
        train_test_split(np.array([[1, 2], [1, 3]]), by="time")
    with pytest.raises(ValueError, match="missing value"):
        train_test_split(pd.DataFrame({"user": [1, 1], "item": [1, 2],
                                       "timestamp": [1.0, np.nan]}), by="time")


@pytest.mark.parametrize(
    "cv, exc, match",
    [
        (PerUserHoldout(n_splits=1), ValueError, "n_splits must be an int >= 2"),
        (PerUserHoldout(n_splits=2.0), TypeError, "n_splits must be an int"),
        (PerUserHoldout(n_splits=0, test_size=0.2), ValueError, "n_splits must be a positive int"),
        (PerUserHoldout(test_size=1.0), ValueError, r"test_size must be a float in \(0, 1\)"),
        (PerUserHoldout(n_splits=10**6), ValueError, "n_splits=1000000 is larger"),
        (LeaveLastOut(n_last=0), ValueError, "n_last must be a positive int"),
        (LeaveLastOut(time_column="time"), ValueError,
         r"no time column 'time'.*LeaveLastOut\(time_column=...\)"),
        (LeaveLastOut(n_last=100), ValueError, "no user has more than n_last=100"),
        (NewItemSplit(test_size=0.0), ValueError, r"test_size must be a float in \(0, 1\)"),
        (NewItemSplit(n_splits=6), ValueError, "n_splits=6 disjoint sets of 8 new items"),
        (NewItemSplit(test_size=0.02), ValueError, "= 0 new item"),
        (NewItemSplit(test_size=0.04, validation=True), ValueError,
         "one validation and one test item"),
        (NewItemSplit(validation="yes"), TypeError, "validation must be True or False"),
        (EnvironmentSplit("env"), ValueError, "no column 'env'"),
        (EnvironmentSplit(test_groups=["w"]), ValueError,
         r"test_groups \['w'\] not found in column 'environment'"),
        (EnvironmentSplit(test_groups=["x", "y", "z"]), ValueError, "training set would be empty"),
        (EnvironmentSplit(test_groups=[]), ValueError, "test_groups is empty"),
    ],
    ids=repr,
)
def test_cross_validator_bad_parameters(cv, exc, match):
    with pytest.raises(exc, match=match):
        list(cv.split(big_table()))


def test_cross_validators_unsplittable():
    X = single_interaction_users()
    with pytest.raises(ValueError, match="no user has 2 or more interactions"):
        list(PerUserHoldout(n_splits=2).split(X))
    with pytest.raises(ValueError, match="no user has 2 or more interactions"):
        list(PerUserHoldout(n_splits=2, test_size=0.5).split(X))
    with pytest.raises(ValueError, match="no user has more than n_last=1"):
        list(LeaveLastOut().split(X))
    with pytest.raises(ValueError, match="1 new item.*at least 2"):
        list(NewItemSplit(test_size=0.5, validation=True).split(X))
    with pytest.raises(ValueError, match="at least 2 groups"):
        list(EnvironmentSplit().split(X.assign(environment="only")))
    with pytest.raises(ValueError, match="needs X to count the groups"):
        EnvironmentSplit().get_n_splits()
    with pytest.raises(ValueError, match="split_validation needs validation=True"):
        list(NewItemSplit().split_validation(big_table()))


# ------------------------------------------------------------- the carved early-stopping share
def test_validation_holdout_represents_light_users():
    from invrec.model_selection import validation_holdout_mask

    # a long tail as TikTok's: 900 users with 2 rows, 10 users with 200
    codes = np.concatenate([np.repeat(np.arange(900), 2), np.repeat(np.arange(900, 910), 200)])
    mask = validation_holdout_mask(codes, 0.1, np.random.RandomState(0))
    per_user = np.bincount(codes[mask], minlength=910)
    counts = np.bincount(codes)
    assert (per_user <= counts - 1).all()                            # every user keeps a row
    assert np.all(per_user[900:] == 20)                              # 0.1 * 200, exactly
    light = per_user[:900]
    assert set(np.unique(light)) <= {0, 1} and 140 <= light.sum() <= 220   # about 0.2 per user
    # round_half_up (train_test_split) would hold out no light user at all
    _, test = train_test_split(pd.DataFrame({"user": codes, "item": np.arange(len(codes))}),
                               test_size=0.1, by="user", random_state=0)
    assert test["user"].nunique() == 10
    np.testing.assert_array_equal(mask, validation_holdout_mask(codes, 0.1, np.random.RandomState(0)))


def test_validation_holdout_of_a_tiny_table_and_of_single_rows():
    from invrec.model_selection import validation_holdout_mask

    mask = validation_holdout_mask(np.array([0, 0, 1]), 0.01, np.random.RandomState(0))
    assert mask.tolist() == [True, False, False] or mask.tolist() == [False, True, False]
    with pytest.raises(ValueError, match="no user has 2 or more"):
        validation_holdout_mask(np.array([0, 1, 2]), 0.5, np.random.RandomState(0))
