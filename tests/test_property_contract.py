"""The recommender contract as properties (hypothesis), for every estimator (issue 17).

Random interaction tables (int, string or mixed ids of a column; duplicate rows; an extra column;
a DataFrame or a list of pairs), random weights or ratings, random :class:`~invrec.ItemFeatures`
with missing rows (items without some or all of their content) and extra items (content for items
without an interaction); every estimator of ``invrec.all_estimators()`` fitted for one epoch (one
short stage each for PaInvRL and EIOR). Checked on every draw:

* the catalog is the items of ``X`` and of the features together;
* ``recommend`` returns catalog items only, ``min(n, candidates)`` per user with ranks 1..k, finite
  scores sorted descending, none of the user's interactions in ``X`` (``exclude_seen=True``);
* ``predict`` on the recommended pairs equals the recommend scores (a regressor's are clipped to
  its rating scale by ``predict``, as documented);
* ``score`` is finite and in [0, 1] (a regressor's ``score(X, y)`` is a finite, non-positive RMSE);
* none of the caller's inputs is changed;
* a pickle and an :func:`invrec.save` / :func:`invrec.load` round trip predict and rank the same,
  bit for bit.

Ids of one column that differ only in type (``0`` and ``"0"``) are refused, in ``X`` and in
``ItemFeatures``, and so are item ids of another type than the features': a property too.

Examples are bounded (``max_examples``) and drawn from a fixed seed (``derandomize=True``), so
the file runs in well under a minute and CI draws the same examples every time.
"""

import os
import pickle
import re
import tempfile
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sklearn.base import is_regressor

import invrec
from invrec import ItemFeatures
from invrec.invariance import EnvironmentInference, MaskLearning
from invrec.utils.discovery import all_estimators

ESTIMATORS = dict(all_estimators())

#: One epoch, tiny widths, no early stopping (a table of a few rows has no validation share).
_TINY = dict(max_epochs=1, batch_size=8, embedding_dim=4, content_dim=4, n_negatives=2,
             early_stopping=False, random_state=0)

#: ``INVREC_PROPERTY_EXAMPLES=500`` searches further: that many examples per test, freshly drawn
#: (not derandomised) on every run. Unset, the bounded, fixed examples of CI.
_SEARCH = int(os.environ.get("INVREC_PROPERTY_EXAMPLES", "0"))
_FIT_SETTINGS = settings(max_examples=_SEARCH or 30, deadline=None, derandomize=not _SEARCH, database=None,
                         suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
_FAST_SETTINGS = settings(max_examples=_SEARCH or 50, deadline=None, derandomize=not _SEARCH, database=None,
                          suppress_health_check=[HealthCheck.too_slow])


def _tiny(name):
    """A one-epoch instance of the estimator ``name`` (one short stage each where it has stages)."""
    cls = ESTIMATORS[name]
    known = cls().get_params()
    params = {k: v for k, v in _TINY.items() if k in known}
    if "environments" in known:
        weighting = {"weighting": 0.5} if name.startswith("EIOR") else {}
        params.update(environments=EnvironmentInference(2, max_rounds=1, epochs=1), n_outer_iter=1,
                      mask=MaskLearning(epochs=1, **weighting))
    return cls(**params)


def _is_regressor(estimator):
    return is_regressor(estimator)


# ---------------------------------------------------------------- strategies
_INTS = st.integers(-(2**63), 2**63 - 1)
_TEXTS = st.text(max_size=4)          # any unicode, "" and "nan" included


def _ids(kind, n):
    """``n`` distinct ids of one kind; a mixed list never holds two ids of one str (0 and "0")."""
    values = {"int": _INTS, "str": _TEXTS, "mixed": st.one_of(_INTS, _TEXTS)}[kind]
    ids = st.lists(values, min_size=n, max_size=n, unique_by=lambda v: str(v))
    if kind == "mixed":           # at least one id of each type
        ids = ids.filter(lambda v: {type(x) for x in v} == {int, str})
    return ids


@st.composite
def problems(draw, regressor=False):
    """A fit problem: ``X`` (as the caller passes it), ``y``, the features (or None) and the
    interactions as (user, item) pairs with their weight."""
    user_kind = draw(st.sampled_from(["int", "str", "mixed"]))
    item_kind = draw(st.sampled_from(["int", "str", "mixed"]))
    n_users, n_items = draw(st.integers(1, 5)), draw(st.integers(1, 6))
    n_extra = draw(st.integers(0, 3))
    users = draw(_ids(user_kind, n_users))
    all_items = draw(_ids(item_kind if item_kind != "mixed" or n_items + n_extra >= 2 else "int",
                          n_items + n_extra))
    items, extra = all_items[:n_items], all_items[n_items:]
    rows = draw(st.lists(st.tuples(st.integers(0, n_users - 1), st.integers(0, n_items - 1)),
                         min_size=1, max_size=25))
    pairs = [(users[u], items[i]) for u, i in rows]
    if draw(st.booleans()):
        X = pd.DataFrame({"user": [u for u, _ in pairs], "item": [i for _, i in pairs]})
        if draw(st.booleans()):
            X["timestamp"] = np.arange(len(X))            # an extra column rides along
    else:
        X = list(pairs)
    if regressor:
        y = np.array(draw(st.lists(st.floats(-5, 5, allow_nan=False), min_size=len(rows),
                                   max_size=len(rows))))
    elif draw(st.booleans()):
        y = np.array(draw(st.lists(st.sampled_from([0.0, 0.5, 1.0, 2.0, 3.5]), min_size=len(rows),
                                   max_size=len(rows))))
        if not (y > 0).any():
            y[0] = 1.0
    else:
        y = None
    features = draw(item_features(items, extra)) if draw(st.booleans()) or extra else None
    return X, y, features, pairs


@st.composite
def item_features(draw, items, extra):
    """Content for some of ``items`` (the others have none) and for every ``extra`` item; some
    rows of each modality missing (all-NaN)."""
    with_content = [i for i in items if draw(st.booleans())]
    ids = with_content + list(extra)
    if not ids:
        ids = [items[0]]
    order = draw(st.permutations(range(len(ids))))
    ids = [ids[k] for k in order]
    matrices = {}
    for m in range(draw(st.integers(1, 2))):
        d = draw(st.integers(1, 3))
        values = draw(st.lists(st.floats(-1e3, 1e3, allow_nan=False, width=32), min_size=len(ids) * d,
                               max_size=len(ids) * d))
        matrix = np.array(values, dtype=np.float64).reshape(len(ids), d)
        missing = draw(st.lists(st.booleans(), min_size=len(ids), max_size=len(ids)))
        matrix[np.array(missing, dtype=bool)] = np.nan
        if draw(st.booleans()):
            matrix = np.asfortranarray(matrix)           # a transpose's layout
        matrices[f"m{m}"] = matrix
    return ItemFeatures(matrices, item_ids=ids)


# ---------------------------------------------------------------- the contract
def _copy(value):
    if isinstance(value, pd.DataFrame):
        return value.copy(deep=True)
    if isinstance(value, np.ndarray):
        return value.copy()
    if isinstance(value, ItemFeatures):
        return {m: np.array(value[m]) for m in value.modalities}, list(value.item_ids)
    return [tuple(p) for p in value] if isinstance(value, list) else value


def _assert_unchanged(value, before):
    if isinstance(value, pd.DataFrame):
        pd.testing.assert_frame_equal(value, before)
    elif isinstance(value, np.ndarray):
        np.testing.assert_array_equal(value, before)
    elif isinstance(value, ItemFeatures):
        arrays, ids = before
        assert list(value.item_ids) == ids
        for m, array in arrays.items():
            np.testing.assert_array_equal(value[m], array)
    elif isinstance(value, list):
        assert [tuple(p) for p in value] == before
    else:
        assert value is before


def _seen_pairs(pairs, y):
    """The interactions of ``X``: every row, or the rows of positive weight."""
    if y is None:
        return set(pairs)
    return {p for p, w in zip(pairs, y) if w > 0}


def _types_never_match(x_items, features):
    """True when X's items are all of one type, the features' ids all of the other, none shared."""
    if features is None:
        return False
    kinds = [{type(i) for i in ids} for ids in (x_items, set(features.item_ids.tolist()))]
    return (all(len(k) == 1 for k in kinds) and kinds[0] != kinds[1]
            and not x_items & set(features.item_ids.tolist()))


def _modalities_no_trained_item_has(features, pairs, y):
    """Modalities that no item of a trained row (positive weight) has: nothing to fill from."""
    if features is None:
        return []
    trained = {i for (_, i) in _seen_pairs(pairs, y)}
    rows = [k for k, i in enumerate(features.item_ids) if i in trained]
    available = features.availability[rows] if rows else np.zeros((0, features.n_modalities), bool)
    return [m for j, m in enumerate(features.modalities) if not available[:, j].any()]


def _check_recommend(model, users, n, seen, regressor):
    catalog = set(model.item_ids_)
    recs = model.recommend(users, n=n)
    assert list(recs.columns) == ["user", "item", "score", "rank"]
    assert set(recs["item"]) <= catalog
    scores = recs["score"].to_numpy(dtype=np.float64)
    assert np.isfinite(scores).all()
    assert not any(pair in seen for pair in zip(recs["user"], recs["item"]))
    order = list(dict.fromkeys(recs["user"]))
    assert order == [u for u in dict.fromkeys(users) if u in set(order)]      # the users' order
    listed = recs["user"].tolist()
    for user in dict.fromkeys(users):
        # by Python equality: pandas compares a string column with a scalar through numpy, which
        # drops trailing NULs ("\x00" == "" there), and such ids are valid ids
        mine = recs[np.array([u == user for u in listed], dtype=bool)]
        n_seen = sum(1 for (u, _) in seen if u == user)
        assert len(mine) == min(n, model.n_items_ - n_seen)
        assert mine["rank"].tolist() == list(range(1, len(mine) + 1))
        assert (np.diff(mine["score"].to_numpy(dtype=np.float64)) <= 0).all()
        assert mine["item"].is_unique
    # predict scores the same pairs as recommend ranked them
    predicted = model.predict(recs[["user", "item"]])
    expected = scores
    if regressor:            # predict clips to the training scale; recommend ranks unclipped
        expected = np.clip(scores, model.rating_scale_.low, model.rating_scale_.high)
    np.testing.assert_allclose(predicted, expected, rtol=1e-5, atol=1e-6 * max(1.0, np.abs(expected).max(initial=0)))
    # every catalog item is a candidate without exclude_seen
    everything = model.recommend(users, n=n, exclude_seen=False)
    assert everything.groupby("user").size().eq(min(n, model.n_items_)).all()
    return recs


def _expected_refusal(pairs, weights, features, early_stopping):
    """The error a fit raises on this problem: ``(regex of its start, certain)``, or None.

    ``certain`` is False where the refusal depends on the rows early stopping carves.
    """
    if _types_never_match({i for _, i in pairs}, features):
        # ints in X, strings in the features (or the reverse), no id shared: a mistake, refused
        return r"X's item ids are .* but item_features' item ids are .*: no id matches\. Give both", True
    rows = [p for p, w in zip(pairs, weights if weights is not None else [1] * len(pairs)) if w > 0]
    if early_stopping and max(pd.Series([u for u, _ in rows]).value_counts()) < 2:
        return r"early_stopping=True needs a validation share of X, which cannot be carved: .* validation_data", True
    lacking = _modalities_no_trained_item_has(features, pairs, weights)
    if early_stopping and features is not None:
        # The carve takes rows out of training, so a modality may lack among the items trained on
        # (another, earlier one than ``lacking`` names, too): refused when one lacks among all.
        return r"item_features' modality .* is missing for all .* or (drop it|fit without)", bool(lacking)
    if lacking:             # its missing rows have no training mean: refused, naming the fix
        return rf"item_features' modality {lacking[0]!r} is missing for all .* or (drop it|fit without)", True
    return None


@pytest.mark.parametrize("name", sorted(ESTIMATORS))
@_FIT_SETTINGS
@given(data=st.data())
def test_fitted_estimators_keep_the_contract(name, data):
    estimator = _tiny(name)
    regressor = _is_regressor(estimator)
    X, y, features, pairs = data.draw(problems(regressor=regressor), label="problem")
    early = "early_stopping" in estimator.get_params() and data.draw(st.booleans(), label="early_stopping")
    estimator.set_params(**({"early_stopping": True, "validation_fraction": 0.3} if early else {}))
    inputs = [X, y, features]
    before = [_copy(value) for value in inputs]
    weights = None if regressor else y          # a regressor's y is ratings: every row is an interaction
    refusal, certain = _expected_refusal(pairs, weights, features, early) or (None, False)
    model = None
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            model = estimator.fit(X, y, item_features=features)
        except ValueError as exc:
            if refusal is None or not re.match(refusal, str(exc), flags=re.DOTALL):
                raise
            assert not hasattr(estimator, "item_ids_")                     # nothing fitted
        else:
            assert not certain, f"fit did not refuse with {refusal!r}"
    for value, copy in zip(inputs, before):
        _assert_unchanged(value, copy)
    if model is None:
        return

    x_items = {i for _, i in pairs}
    expected_catalog = x_items | (set(features.item_ids) if features is not None else set())
    assert set(model.item_ids_) == expected_catalog and model.n_items_ == len(expected_catalog)
    assert set(model.user_ids_) == {u for u, _ in pairs}

    users = data.draw(st.lists(st.sampled_from(list(model.user_ids_)), min_size=1, max_size=6,
                               unique_by=lambda v: (type(v), v)), label="users")
    n = data.draw(st.integers(1, model.n_items_ + 2), label="n")
    users_before = list(users)
    _check_recommend(model, users, n, _seen_pairs(pairs, weights), regressor)
    assert users == users_before

    # score: held-out pairs of known users and catalog items
    held_out = data.draw(st.lists(st.tuples(st.sampled_from(list(model.user_ids_)),
                                            st.sampled_from(list(model.item_ids_))), min_size=1, max_size=8),
                         label="held_out")
    table = pd.DataFrame({"user": [u for u, _ in held_out], "item": [i for _, i in held_out]})
    table_before = table.copy()
    score = model.score(table)
    assert np.isfinite(score) and 0.0 <= score <= 1.0
    if regressor:
        ratings = np.linspace(-5, 5, len(table))
        rmse = model.score(table, ratings)
        assert np.isfinite(rmse) and rmse <= 0.0
    pd.testing.assert_frame_equal(table, table_before)

    # a pickle and an invrec.save round trip give the same model, bit for bit
    again = pickle.loads(pickle.dumps(model))
    with tempfile.TemporaryDirectory() as folder:
        loaded = invrec.load(invrec.save(model, Path(folder) / "model.invrec"))
    for copy in (again, loaded):
        np.testing.assert_array_equal(copy.predict(table), model.predict(table))
        pd.testing.assert_frame_equal(copy.recommend(users, n=n), model.recommend(users, n=n))


# ---------------------------------------------------------------- refusals
@st.composite
def colliding_ids(draw):
    """Distinct int ids, one of them also given as its str (``0`` and ``"0"``), and where."""
    ids = draw(st.lists(st.integers(-(10**6), 10**6), min_size=1, max_size=6, unique=True))
    twin = draw(st.sampled_from(ids))
    column = list(ids) + [str(twin)]
    order = draw(st.permutations(range(len(column))))
    return [column[k] for k in order], twin


@_FAST_SETTINGS
@given(ids=colliding_ids(), column=st.sampled_from(["user", "item"]))
def test_ids_of_one_column_that_differ_only_in_type_are_refused(ids, column):
    from invrec.baselines import PopularityRecommender

    values, twin = ids
    other = list(range(len(values)))
    X = pd.DataFrame({column: values, ("item" if column == "user" else "user"): other})[["user", "item"]]
    before = X.copy()
    with pytest.raises(ValueError, match=rf"X's {column} column has ids that differ only in type.*"
                                         rf"astype\(str\)"):
        PopularityRecommender().fit(X)
    pd.testing.assert_frame_equal(X, before)
    with pytest.raises(ValueError, match="differ only in type"):
        ItemFeatures({"v": np.zeros((len(values), 2))}, item_ids=values)


@_FAST_SETTINGS
@given(ids=st.lists(st.integers(0, 50), min_size=1, max_size=6, unique=True))
def test_item_ids_of_another_type_than_the_features_are_refused(ids):
    from invrec.baselines import PopularityRecommender

    X = pd.DataFrame({"user": np.zeros(len(ids), dtype=int), "item": ids})
    features = ItemFeatures({"v": np.ones((len(ids), 2))}, item_ids=[str(i) for i in ids])
    with pytest.raises(ValueError, match=r"differ in type: .* \(int\) and '.*' \(str\)"):
        PopularityRecommender().fit(X, item_features=features)
    with pytest.raises(ValueError, match=r"differ in type: '.*' \(str\) and .* \(int\)"):
        PopularityRecommender().fit(X.assign(item=X["item"].astype(str)),
                                    item_features=ItemFeatures({"v": np.ones((len(ids), 2))}, item_ids=ids))
