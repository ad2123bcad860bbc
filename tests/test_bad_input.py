"""Bad input gets a clear error from invrec's own code, naming the problem and the fix (issue 17).

One test per kind of bad input, parametrised over its variants. Every test also checks that the
caller's objects come back unchanged. The defects each test guards against are named in its
docstring: "before" is what happened without the check.
"""

import warnings

import numpy as np
import pandas as pd
import pytest
import torch

from invrec import ItemFeatures
from invrec.base import resolve_device
from invrec.baselines import PopularityRecommender, UltraGCNRecommender
from invrec.datasets import make_multimodal_interactions
from invrec.eior import EIORRegressor
from invrec.invariance import EnvironmentInference, MaskLearning
from invrec.utils.params import InvalidParameterError
from invrec.utils.validation import as_id_array, check_interactions

TINY = dict(max_epochs=2, batch_size=16, embedding_dim=4, content_dim=4, random_state=0)


def _tiny_recommender(**params):
    return UltraGCNRecommender(**{**TINY, "n_negatives": 2, "early_stopping": False, **params})


def _tiny_regressor(**params):
    return EIORRegressor(**{**TINY, "early_stopping": False, **params},
                         environments=EnvironmentInference(2, max_rounds=1, epochs=1),
                         mask=MaskLearning(epochs=1, weighting=0.5), n_outer_iter=1)


@pytest.fixture(scope="module")
def data():
    bunch = make_multimodal_interactions(n_users=20, n_items=30, random_state=0)
    return bunch.interactions[["user", "item"]], bunch.item_features


def _features(item_ids, d=3, seed=0):
    rng = np.random.default_rng(seed)
    return ItemFeatures({"v": rng.normal(size=(len(item_ids), d))}, item_ids=item_ids)


X_INT = pd.DataFrame({"user": [0, 0, 1, 1, 2, 2], "item": [0, 1, 1, 2, 0, 2]})


# ---------------------------------------------------------------- defect 2: id types reconciled
@pytest.mark.parametrize("x_items, feature_ids, match", [
    # before: "item_ids has duplicates", then "cannot mean-fill", then a wrong catalog
    ([0, 1, 1, 2, 0, 2], ["0", "1", "2"], r"differ in type: 0 \(int\) and '0' \(str\)"),
    (["0", "1", "1", "2", "0", "2"], [0, 1, 2], r"differ in type: '0' \(str\) and 0 \(int\)"),
    ([0, 1, 1, 2, 0, 2], ["a", "b", "c"], "no id matches"),
])
def test_item_ids_of_X_and_item_features_must_have_one_type(x_items, feature_ids, match):
    X = X_INT.assign(item=x_items)
    before = X.copy()
    features = _features(feature_ids)
    with pytest.raises(ValueError, match=match) as info:
        PopularityRecommender().fit(X, item_features=features)
    assert "astype(str)" in str(info.value)              # the fix is named
    pd.testing.assert_frame_equal(X, before)
    assert features.item_ids.tolist() == feature_ids


def test_mixed_id_lists_keep_each_type():
    """Before: ``ItemFeatures(item_ids=[0, 1, "a"])`` turned every id into a string."""
    features = _features([0, 1, "a"])
    assert features.item_ids.tolist() == [0, 1, "a"]
    assert [type(v) for v in features.item_ids] == [int, int, str]
    assert features.index_of([1, "a"]).tolist() == [1, 2]
    X = pd.DataFrame({"user": [0, 0, 1], "item": pd.Series([0, "a", 1], dtype=object)})
    model = PopularityRecommender().fit(X, item_features=features)
    assert model.item_ids_.tolist() == [0, 1, "a"]
    np.testing.assert_array_equal(model.item_features_["v"], features["v"])   # content on its own item
    assert as_id_array([0, "a"]).tolist() == [0, "a"]


@pytest.mark.parametrize("call, match", [
    (lambda: check_interactions(pd.DataFrame({"user": [0, "0"], "item": [1, 2]})), "X's user column"),
    (lambda: check_interactions([[0, 1], ["0", 2]]), "X's user column"),
    (lambda: check_interactions(pd.DataFrame({"user": [0, 1], "item": [5, "5"]}), name="exclude"),
     "exclude's item column"),
    (lambda: ItemFeatures({"v": np.ones((2, 2))}, item_ids=[0, "0"]), "item_ids"),
])
def test_ids_that_differ_only_in_type_are_refused(call, match):
    """Before: ``0`` and ``"0"`` in one column silently became two users (or two items)."""
    with pytest.raises(ValueError, match=rf"{match} has ids that differ only in type.*([05]) \(int\) and '\1' \(str\)"):
        call()


@pytest.mark.parametrize("call", [
    lambda m: m.recommend(["0"]),
    lambda m: m.set_params(handle_unknown="ignore").recommend(["0", "1"]),
    lambda m: m.predict(pd.DataFrame({"user": ["0"], "item": [1]})),
    lambda m: m.recommend([0], items=["1"]),
    lambda m: m.recommend([0], exclude=pd.DataFrame({"user": ["0"], "item": ["1"]})),
])
def test_ids_of_another_type_than_in_fit_are_named(call):
    """Before: "not seen in fit" without the reason, or (with 'ignore', or in exclude) nothing."""
    model = PopularityRecommender().fit(X_INT)
    with pytest.raises(ValueError, match=r"differ from the fitted ids in type only: '[01]' \(str\) for [01] \(int"):
        call(model)


def test_validation_ids_of_another_type_are_named():
    valid = pd.DataFrame({"user": ["0"], "item": ["2"]})
    with pytest.raises(ValueError, match=r"shares no user and item.*'0' \(str\) for 0 \(int"):
        _tiny_recommender().fit(X_INT, validation_data=valid)


@pytest.mark.parametrize("as_input", [np.array, list, lambda ids: ids[0], lambda ids: int(ids[0])],
                         ids=["uint64 array", "list of ints", "numpy scalar", "python int"])
def test_uint64_ids_above_2_63(as_input):
    """Before: fitting on them worked, then ``recommend`` raised OverflowError (a cast to int64)."""
    big = np.array([2**63 + 5, 2**63 + 7, 2**64 - 1], dtype=np.uint64)
    X = pd.DataFrame({"user": big, "item": [1, 2, 1]})
    model = PopularityRecommender().fit(X)
    recs = model.recommend(as_input(big), n=1, exclude_seen=False)
    assert recs["user"].tolist()[0] == 2**63 + 5
    from_list = PopularityRecommender().fit([[int(u), i] for u, i in zip(big, [1, 2, 1])])
    assert from_list.user_ids_.dtype == np.uint64 and from_list.user_ids_.tolist() == big.tolist()
    assert as_id_array([2**70]).tolist() == [2**70]          # beyond uint64: kept as Python ints


# ---------------------------------------------------------------- defect 6: explicit ratings
@pytest.mark.parametrize("ratings", [[0, 1, 2, 3, 4, 0], [-2, -1, 0, 1, 2, -2], [-1.5, -0.5, -1, -2, -3, -1]],
                         ids=["0-4 scale", "centred", "all negative"])
def test_every_finite_rating_is_a_rating(ratings):
    """Before: rows rated <= 0 were dropped silently (a 0-4 scale lost its 0s; a centred scale
    half its rows), or every one refused ("y <= 0")."""
    y = np.array(ratings, dtype=float)
    model = _tiny_regressor().fit(X_INT, y)
    assert model.rating_scale_.low == y.min() and model.rating_scale_.mean == pytest.approx(y.mean())
    assert model.unseen_items_.size == 0 and model._seen.nnz == len(X_INT)    # every row trained on
    pred = model.predict(X_INT)
    assert np.isfinite(pred).all() and pred.min() >= y.min() and pred.max() <= y.max()
    assert y.tolist() == list(map(float, ratings))


@pytest.mark.parametrize("bad", [np.nan, np.inf])
def test_non_finite_ratings_are_named(bad):
    """Before: NaN validation ratings were blamed on unknown ids (handle_unknown='ignore')."""
    y = np.array([1.0, 2, 3, 4, 5, 1])
    valid = pd.DataFrame({"user": [0, 1], "item": [2, 0], "rating": [3.0, bad]})
    before = valid.copy()
    with pytest.raises(ValueError, match=r"validation_data's 'rating' column holds 1 NaN or infinite "
                                         r"rating\(s\), first at row 1.*dropna"):
        _tiny_regressor().fit(X_INT, y, validation_data=valid)
    pd.testing.assert_frame_equal(valid, before)
    with pytest.raises(ValueError, match=r"y holds 1 NaN or infinite rating\(s\), first at row 2"):
        _tiny_regressor().fit(X_INT, [1.0, 2, bad, 4, 5, 1])
    with pytest.raises(ValueError, match="numeric ratings"):
        _tiny_regressor().fit(X_INT, ["good", "bad", "good", "bad", "good", "bad"])


# ---------------------------------------------------------------- defect 9: errors from deep inside
@pytest.mark.parametrize("users, error, match", [
    # before: "'NoneType' object is not iterable", "Buffer has wrong number of dimensions"
    (None, TypeError, "users must be an id or an array-like of ids; got None"),
    ([[0], [1]], TypeError, r"unhashable id at position 0: \[0\] \(list\)"),
    ([0, {1}], TypeError, r"unhashable id at position 1: \{1\} \(set\)"),
    ({0: "a"}, TypeError, r"list\(users\) for its keys"),
    (np.array([[0, 1]]), ValueError, r"must be 1-D.*np.ravel\(users\)"),
])
def test_bad_user_ids_for_recommend(users, error, match):
    model = PopularityRecommender().fit(X_INT)
    with pytest.raises(error, match=match):
        model.recommend(users)


@pytest.mark.parametrize("X, error, match", [
    ({"user": [0, 1], "item": [1, 2]}, TypeError, r"X is a dict.*pd.DataFrame\(X\)"),   # before: "got shape ()"
    (pd.DataFrame({"user": [[0], [1]], "item": [1, 2]}), TypeError, "X's user column holds an unhashable id"),
    ([[0, {1: 2}], [1, 2]], TypeError, "X's item column holds an unhashable id"),
])
def test_bad_interaction_tables(X, error, match):
    with pytest.raises(error, match=match):
        PopularityRecommender().fit(X)


class _Table:
    """A table of another library: it converts itself with ``to_pandas()`` (as polars, Arrow)."""

    def __init__(self, frame, error=None):
        self.frame, self.error = frame, error

    def to_pandas(self):
        if self.error:
            raise ImportError(self.error)
        return self.frame.copy()

    def __array__(self, dtype=None, copy=None):            # what np.asarray read before: positions
        return self.frame.to_numpy(dtype=dtype)


def _polars(frame):
    return pytest.importorskip("polars").from_pandas(frame)


def _arrow(frame):
    return pytest.importorskip("pyarrow").Table.from_pandas(frame, preserve_index=False)


@pytest.mark.parametrize("convert", [_Table, _polars, _arrow], ids=["to_pandas", "polars", "pyarrow"])
def test_tables_of_other_libraries_are_read_by_column_name(convert):
    """Before: read by position through ``np.asarray`` (columns item, user swapped silently),
    and "Pass a DataFrame" with a third column."""
    frame = pd.DataFrame({"item": [5, 6, 6], "user": [0, 1, 2], "timestamp": [1, 2, 3]})
    table, _ = check_interactions(convert(frame))
    assert table["user"].tolist() == [0, 1, 2] and table["item"].tolist() == [5, 6, 6]
    model = PopularityRecommender().fit(convert(frame))
    assert model.item_ids_.tolist() == [5, 6] and model.user_ids_.tolist() == [0, 1, 2]


def test_tables_that_cannot_convert_name_the_fix():
    with pytest.raises(TypeError, match=r"X.to_pandas\(\), and that failed: No module named 'pyarrow'\. "
                                        r"Install what it asks for \(pyarrow for polars\)"):
        check_interactions(_Table(pd.DataFrame({"user": [0], "item": [1]}), error="No module named 'pyarrow'"))

    class LazyFrame:
        def collect(self):
            return None
    with pytest.raises(TypeError, match=r"collect it first: X.collect\(\)"):
        check_interactions(LazyFrame())


def test_numpy_generator_random_state_is_refused_with_the_fix():
    """Before: refused, but without saying why nor what to pass instead."""
    with pytest.raises(InvalidParameterError, match=r"Generator is not accepted.*random_state=int\(rng.integers"):
        _tiny_recommender(random_state=np.random.default_rng(0)).fit(X_INT)


def test_unavailable_devices_list_the_available_ones(monkeypatch):
    """Before: ``device="mps"`` without MPS crashed in torch ("without MPS backend")."""
    monkeypatch.setattr(torch.backends.mps, "is_available", lambda: False)
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    with pytest.raises(ValueError, match=r"MPS \(an Apple GPU\) is not available.*Available here: 'auto', 'cpu'\."):
        _tiny_recommender(device="mps").fit(X_INT)
    with pytest.raises(ValueError, match="trains on 'cpu', 'cuda' or 'mps'.*Available here"):
        resolve_device("meta")
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 1)
    with pytest.raises(ValueError, match=r"has 1 CUDA device\(s\).*'cuda:0'"):
        resolve_device("cuda:3")


@pytest.mark.parametrize("value", ["no", "False", 0, 1, None])
def test_booleans_must_be_bool(value):
    """Before: ``exclude_seen="no"`` excluded (any truthy value did)."""
    model = PopularityRecommender().fit(X_INT)
    with pytest.raises(InvalidParameterError, match=r"exclude_seen must be a bool; got"):
        model.recommend([0], exclude_seen=value)
    assert len(model.recommend([0], exclude_seen=np.bool_(False))) == 3
    with pytest.raises(InvalidParameterError, match=r"concat must be a bool; got"):
        _features([0, 1]).to_tensor(concat=value)


# ---------------------------------------------------------------- defect 10: recommend's candidates
def test_new_items_of_item_features_are_candidates_without_items(data):
    """Before: ``recommend(item_features=new)`` without ``items=`` ignored the new items."""
    X, features = data
    model = _tiny_recommender().fit(X, item_features=features)
    rng = np.random.default_rng(1)
    new = ItemFeatures({m: rng.normal(size=(2, d)) for m, d in features.dims.items()}, item_ids=["n1", "n2"])
    recs = model.recommend([0, 1], n=model.n_items_ + 2, item_features=new)
    assert {"n1", "n2"} <= set(recs["item"])
    explicit = model.recommend([0, 1], n=model.n_items_ + 2, item_features=new,
                               items=list(model.item_ids_) + ["n1", "n2"])
    pd.testing.assert_frame_equal(recs, explicit)
    # New item ids must be of the catalog's type: "0" is not the item 0.
    clash = ItemFeatures({m: rng.normal(size=(1, d)) for m, d in features.dims.items()}, item_ids=["0"])
    with pytest.raises(ValueError, match=r"differ from the fitted ids in type only: '0' \(str\) for 0 \(int"):
        model.recommend([0], item_features=clash)


def test_validation_data_rows_are_seen(data):
    """Before: rows given as ``validation_data`` were recommended at test time without a word."""
    X, features = data
    valid = X.groupby("user").head(1)
    train = X.drop(valid.index)
    model = _tiny_recommender(early_stopping=True).fit(train, item_features=features, validation_data=valid)
    users = valid["user"].unique()
    n = model.n_items_
    valid_pairs = set(zip(valid["user"], valid["item"]))
    train_pairs = set(zip(train["user"], train["item"]))
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        recs = model.recommend(users, n=n)
    ranked = set(zip(recs["user"], recs["item"]))
    assert not ranked & valid_pairs and not ranked & train_pairs     # everything fit saw is out
    assert ranked | valid_pairs | train_pairs >= {(u, i) for u in users for i in model.item_ids_}
    unseen = set(zip(*[model.recommend(users, n=n, exclude_seen=False)[c] for c in ("user", "item")]))
    assert valid_pairs <= unseen                                     # exclude_seen=False keeps them
    # score(valid) ranks the validation items (its relevant ones), not an empty target
    assert model.score(valid) > 0.0
    assert model.score(valid) == pytest.approx(
        max(h["valid_ndcg@20"] for h in model.history_ if "valid_ndcg@20" in h))
    # ... while scoring another set still leaves the validation rows out
    assert not set(zip(*[model.recommend(users, n=n)[c] for c in ("user", "item")])) & valid_pairs


# ---------------------------------------------------------------- defect 9: booleans of functions
_RANKINGS = np.array([[2, 0, 5], [4, 3, -1]])
_RELEVANT = [np.array([0, 1]), np.array([4])]


@pytest.mark.parametrize("value", ["no", "False", 0, 1, None])
@pytest.mark.parametrize("name", ["recall_at_k", "precision_at_k", "ndcg_at_k", "ndcg_legacy_at_k",
                                  "hit_rate_at_k", "mrr_at_k", "map_at_k"])
def test_metric_average_must_be_bool(name, value):
    """Before: ``average="no"`` (any truthy value) returned the mean instead of the per-user values."""
    from invrec import metrics

    func = getattr(metrics, name)
    rankings = _RANKINGS.copy()
    with pytest.raises(InvalidParameterError, match=r"average must be a bool; got .*Pass True or False"):
        func(rankings, _RELEVANT, 2, average=value)
    np.testing.assert_array_equal(rankings, _RANKINGS)
    assert np.shape(func(rankings, _RELEVANT, 2, average=np.bool_(False))) == (2,)
    assert np.ndim(func(rankings, _RELEVANT, 2, average=np.bool_(True))) == 0


@pytest.mark.parametrize("value", ["no", "yes", 0, 1, None])
def test_scorer_booleans_must_be_bool(value):
    """Before: refused as ValueError only; now the one bool rule of check_bool (numpy bools pass)."""
    from invrec.metrics import make_ranking_scorer, make_rating_scorer

    with pytest.raises(InvalidParameterError, match=r"exclude_seen must be a bool; got"):
        make_ranking_scorer("ndcg", k=5, exclude_seen=value)
    with pytest.raises(InvalidParameterError, match=r"skip_missing must be a bool; got"):
        make_rating_scorer("rmse", skip_missing=value)
    assert make_ranking_scorer("ndcg", k=5, exclude_seen=np.bool_(False)).exclude_seen is False
    assert make_rating_scorer("rmse", skip_missing=np.bool_(True)).skip_missing is True


@pytest.mark.parametrize("value", ["no", "True", 0, 1, None])
def test_split_validation_must_be_bool(value):
    from invrec.model_selection import NewItemSplit

    X = pd.DataFrame({"user": np.repeat(np.arange(10), 4), "item": np.arange(40) % 20})
    with pytest.raises(InvalidParameterError, match=r"NewItemSplit's validation must be True or False; got"):
        next(NewItemSplit(test_size=0.2, validation=value, random_state=0).split(X))
    train, test = next(NewItemSplit(test_size=0.2, validation=np.bool_(False), random_state=0).split(X))
    assert len(train) and len(test)


@pytest.mark.parametrize("value", ["no", "False", 0, 1, None])
@pytest.mark.parametrize("loader", ["load_movielens_100k", "load_tiktok", "load_lastfm_2k_mm", "load_amazon_baby"])
def test_loader_verify_must_be_bool(loader, value, tmp_path):
    """Checked before any file is read: the error names the loader and the bool to pass."""
    from invrec import datasets

    with pytest.raises(InvalidParameterError, match=rf"{loader}: verify must be True or False; got"):
        getattr(datasets, loader)(tmp_path, verify=value)


@pytest.mark.parametrize("call", [
    lambda: PopularityRecommender().fit(X_INT.assign(user=[0, True, 1, 1, 2, 2])),
    lambda: PopularityRecommender().fit(X_INT.assign(item=[0, 1, 1, np.True_, 0, 2])),
    lambda: ItemFeatures({"v": np.ones((3, 1))}, item_ids=[0, True, 2]),
    lambda: PopularityRecommender().fit(X_INT).recommend([0, True]),
])
def test_a_bool_among_ids_of_other_types_is_refused(call):
    """Before: ``True`` and ``1`` are one key, so the user True silently became the user 1."""
    with pytest.raises(ValueError, match=r"holds the bool True at position \d among ids of other types; "
                                         r"True is the same key as 1"):
        call()
