"""The recommender API of the field on every estimator: similar items and users, public
embeddings, a scipy sparse user x item matrix, polars and Arrow tables as X, and the rename the
error names when the id columns are spelled otherwise."""

import re
import subprocess
import sys
import textwrap

import numpy as np
import pandas as pd
import pytest
import scipy.sparse as sp
import torch
from sklearn.exceptions import NotFittedError

from invrec.base import BaseRecommender
from invrec.baselines import PopularityRecommender, UltraGCNRecommender
from invrec.datasets import make_multimodal_interactions
from invrec.milk import MILKRecommender
from invrec.utils.params import InvalidParameterError
from invrec.utils.ranking import similar_rows
from invrec.utils.validation import check_interactions, interactions_from_sparse

TINY = dict(max_epochs=2, batch_size=64, embedding_dim=4, content_dim=4, n_negatives=4, device="cpu",
            random_state=0)
TINY_MILK = dict(max_epochs=2, batch_size=64, embedding_dim=4, device="cpu", random_state=0)


# ---------------------------------------------------------------- a model built by hand
class _HandVectors(torch.nn.Module):
    """Fixed user and item vectors: the model scores with their dot product."""

    def __init__(self, users, items):
        super().__init__()
        self.register_buffer("users", torch.tensor(users, dtype=torch.float32))
        self.register_buffer("items", torch.tensor(items, dtype=torch.float32))

    def user_vectors(self, users=None):
        return self.users if users is None else self.users[users]

    def item_vectors(self, items=None):
        return self.items if items is None else self.items[items]

    def score_users(self, users):
        return self.user_vectors(users) @ self.items.T

    def forward(self, users, items):
        return (self.user_vectors(users) * self.item_vectors(items)).sum(-1)


#: Item vectors whose cosines are exact: a=(1,0), b=(3,4) (unit (.6,.8)), c=(0,5), d=(-2,0),
#: e=(4,-3) (unit (.8,-.6)). From a: e .8, b .6, c 0, d -1. From b: c .8, a .6, e 0, d -.6.
HAND_ITEMS = [[1, 0], [3, 4], [0, 5], [-2, 0], [4, -3]]
#: User vectors: u0=(1,0), u1=(1,1), u2=(0,-3). From u1: u0 1/sqrt(2), u2 -1/sqrt(2).
HAND_USERS = [[1, 0], [1, 1], [0, -3]]


class _HandModel(BaseRecommender):
    def __init__(self, *, handle_unknown="error"):
        self.handle_unknown = handle_unknown

    def _fit_model(self, data):
        self.module_ = _HandVectors(HAND_USERS, HAND_ITEMS)


def _hand_model(items=("a", "b", "c", "d", "e"), **params):
    X = pd.DataFrame({"user": ["u0", "u0", "u1", "u1", "u2"], "item": list(items)})
    return _HandModel(**params).fit(X)


def test_similar_items_on_a_case_built_by_hand():
    model = _hand_model()
    assert model.item_ids_.tolist() == ["a", "b", "c", "d", "e"]
    out = model.similar_items(["a", "b"], n=4)
    assert out.columns.tolist() == ["item", "similar_item", "score", "rank"]
    assert out["item"].tolist() == ["a"] * 4 + ["b"] * 4
    assert out["similar_item"].tolist() == ["e", "b", "c", "d", "c", "a", "e", "d"]
    np.testing.assert_allclose(out["score"], [0.8, 0.6, 0.0, -1.0, 0.8, 0.6, 0.0, -0.6], atol=1e-6)
    assert out["rank"].tolist() == [1, 2, 3, 4] * 2
    # n cuts each list; more than the other items gives all of them, never the query itself
    assert model.similar_items("a", n=2)["similar_item"].tolist() == ["e", "b"]
    capped = model.similar_items(["b"], n=10)
    assert len(capped) == 4 and "b" not in set(capped["similar_item"])
    # repeats are answered again, in the given order
    assert model.similar_items(["b", "a", "b"], n=1)["similar_item"].tolist() == ["c", "e", "c"]


def test_similar_users_on_a_case_built_by_hand():
    out = _hand_model().similar_users(["u1", "u2"], n=5)
    assert out.columns.tolist() == ["user", "similar_user", "score", "rank"]
    assert out["user"].tolist() == ["u1", "u1", "u2", "u2"]
    assert out["similar_user"].tolist() == ["u0", "u2", "u0", "u1"]
    half = 1 / np.sqrt(2)
    np.testing.assert_allclose(out["score"], [half, -half, 0.0, -half], atol=1e-6)


def test_embeddings_are_read_only_copies_in_id_order():
    model = _hand_model()
    np.testing.assert_array_equal(model.item_embeddings_, np.array(HAND_ITEMS, dtype=np.float32))
    np.testing.assert_array_equal(model.user_embeddings_, np.array(HAND_USERS, dtype=np.float32))
    embeddings = model.item_embeddings_
    with pytest.raises(ValueError, match="read-only"):
        embeddings[0, 0] = 7.0
    with pytest.raises(AttributeError):
        model.item_embeddings_ = np.zeros((5, 2))
    writable = np.array(model.user_embeddings_)
    writable[:] = 0.0                                  # a copy: the model is not touched
    assert model.module_.users.abs().sum().item() == 6.0
    np.testing.assert_array_equal(model.user_embeddings_, np.array(HAND_USERS, dtype=np.float32))


def test_unknown_ids_follow_handle_unknown():
    model = _hand_model()
    with pytest.raises(ValueError, match=r"1 item id\(s\) are not in the catalog, e.g. \['z'\].*"
                                         r"handle_unknown='ignore'"):
        model.similar_items(["a", "z"])
    with pytest.raises(ValueError, match=r"1 user id\(s\) were not seen in fit, e.g. \['nobody'\]"):
        model.similar_users(["nobody"])
    lenient = _hand_model(handle_unknown="ignore")
    out = lenient.similar_items(["z", "a"], n=1)
    assert out["item"].tolist() == ["a"] and out["similar_item"].tolist() == ["e"]
    assert lenient.similar_users(["nobody"], n=2).empty
    # ids of another type stand for none of the known ones: raised even with 'ignore'
    numeric = _hand_model(items=[10, 11, 12, 13, 14], handle_unknown="ignore")
    with pytest.raises(ValueError, match=r"'10' \(str\) for 10 \(int\).*pass ids of the type used in fit"):
        numeric.similar_items(["10"])
    assert numeric.similar_items([10], n=1)["similar_item"].tolist() == [14]
    with pytest.raises(InvalidParameterError, match="n"):
        model.similar_items(["a"], n=0)


def test_without_vectors_or_before_fit_the_error_says_why():
    popularity = PopularityRecommender().fit(pd.DataFrame({"user": [0, 1], "item": [3, 4]}))
    why = r"PopularityRecommender has no {}: it learns no user and item vectors"
    for name in ("user_embeddings_", "item_embeddings_"):
        with pytest.raises(AttributeError, match=why.format(name)):
            getattr(popularity, name)
        assert not hasattr(popularity, name)
    with pytest.raises(AttributeError, match=why.format("similar_items")):
        popularity.similar_items([3])
    with pytest.raises(AttributeError, match=why.format("similar_users")):
        popularity.similar_users([0])
    unfitted = UltraGCNRecommender()
    for call in (lambda: unfitted.item_embeddings_, lambda: unfitted.user_embeddings_,
                 lambda: unfitted.similar_items([0]), lambda: unfitted.similar_users([0])):
        with pytest.raises(NotFittedError, match="not fitted yet"):
            call()
    assert not hasattr(unfitted, "item_embeddings_")


# ---------------------------------------------------------------- fitted estimators
@pytest.fixture(scope="module")
def problem():
    bunch = make_multimodal_interactions(n_users=30, n_items=20, random_state=0)
    X = bunch.interactions[["user", "item"]].drop_duplicates()
    X = X.sort_values(["user", "item"]).reset_index(drop=True)   # the row order of a CSR matrix
    return bunch, X


@pytest.fixture(scope="module")
def fitted(problem):
    bunch, X = problem
    return {"ultragcn": UltraGCNRecommender(**TINY).fit(X, item_features=bunch.item_features),
            "milk": MILKRecommender(**TINY_MILK).fit(X, item_features=bunch.item_features)}


def _cosine_neighbours(vectors, n):
    """Every row's ``n`` nearest other rows, brute force in float64."""
    unit = vectors / np.linalg.norm(vectors, axis=1, keepdims=True)
    cosine = unit @ unit.T
    np.fill_diagonal(cosine, -np.inf)
    return np.argsort(-cosine, axis=1, kind="stable")[:, :n]


@pytest.mark.parametrize("name", ["ultragcn", "milk"])
def test_embeddings_are_the_vectors_the_model_scores_with(fitted, name):
    model = fitted[name]
    users, items = model.user_embeddings_, model.item_embeddings_
    assert users.shape[0] == model.n_users_ and items.shape[0] == model.n_items_
    assert users.shape[1] == items.shape[1] and not users.flags.writeable
    grid = pd.DataFrame({"user": np.repeat(model.user_ids_, model.n_items_),
                         "item": np.tile(model.item_ids_, model.n_users_)})
    expected = (users.astype(np.float64) @ items.T.astype(np.float64)).ravel()
    np.testing.assert_allclose(model.predict(grid), expected, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("name", ["ultragcn", "milk"])
def test_similar_items_and_users_agree_with_brute_force_cosine(fitted, name):
    model = fitted[name]
    items = model.similar_items(model.item_ids_, n=5)
    expected = model.item_ids_[_cosine_neighbours(model.item_embeddings_.astype(np.float64), 5)]
    np.testing.assert_array_equal(items["similar_item"].to_numpy().reshape(-1, 5), expected)
    assert (items["item"] != items["similar_item"]).all()
    assert items["score"].between(-1 - 1e-6, 1 + 1e-6).all()
    users = model.similar_users(model.user_ids_[:7], n=3)
    expected = model.user_ids_[_cosine_neighbours(model.user_embeddings_.astype(np.float64), 3)[:7]]
    np.testing.assert_array_equal(users["similar_user"].to_numpy().reshape(-1, 3), expected)


def _invariant(make):
    from invrec.invariance import EnvironmentInference, MaskLearning

    training = {k: v for k, v in TINY.items() if k in make().get_params()}   # no negatives for ratings
    return make(**training, environments=EnvironmentInference(2, max_rounds=1, epochs=1),
                n_outer_iter=1, mask=MaskLearning(epochs=1, weighting=0.5))


@pytest.mark.parametrize("name", ["PaInvRLRecommender", "EIORRecommender", "EIORRegressor"])
def test_the_invariant_estimators_expose_their_fused_vectors(problem, name):
    from invrec import eior, painvrl

    bunch, X = problem
    model = _invariant(getattr(painvrl if name.startswith("PaInvRL") else eior, name))
    y = 1.0 + np.arange(len(X)) % 5 if name == "EIORRegressor" else None     # ratings
    model.fit(X, y, item_features=bunch.item_features)
    items, users = model.item_embeddings_, model.user_embeddings_
    with torch.no_grad():        # the fused item vectors [alpha V_i ; f_i] the final model scores with
        np.testing.assert_array_equal(items, model.module_.item_vectors().numpy())
        np.testing.assert_array_equal(users, model.module_.user_vectors().numpy())
    neighbours = model.similar_items(model.item_ids_, n=3)["similar_item"].to_numpy().reshape(-1, 3)
    np.testing.assert_array_equal(neighbours, model.item_ids_[_cosine_neighbours(items.astype(np.float64), 3)])


def test_similar_rows_does_not_depend_on_the_chunk_size(fitted):
    vectors = fitted["ultragcn"].item_embeddings_
    whole = similar_rows(vectors, np.arange(len(vectors)), 6)
    for size in (1, 3, 7):
        chunked = similar_rows(vectors, np.arange(len(vectors)), 6, chunk_size=size)
        np.testing.assert_array_equal(chunked[0], whole[0])
        np.testing.assert_allclose(chunked[1], whole[1], rtol=0, atol=1e-6)   # float32 rounding
    # a zero row is similar to nothing (cosine 0), and the query never appears in its own list
    neighbours, scores = similar_rows(np.array([[0.0, 0.0], [1.0, 0.0], [1.0, 1.0]]), [0, 1], 2)
    np.testing.assert_array_equal(scores[0], [0.0, 0.0])
    assert sorted(neighbours[0].tolist()) == [1, 2]
    assert neighbours[1].tolist() == [2, 0]
    np.testing.assert_allclose(scores[1], [1 / np.sqrt(2), 0.0], atol=1e-7)
    empty = similar_rows(vectors, [], 4)
    assert empty[0].shape == (0, 4) and empty[1].shape == (0, 4)


# ---------------------------------------------------------------- input people have
def _polars(X):
    return pytest.importorskip("polars").from_pandas(X)


def _arrow(X):
    return pytest.importorskip("pyarrow").Table.from_pandas(X, preserve_index=False)


def _csr(X, weights=None):
    values = np.ones(len(X)) if weights is None else weights
    return sp.csr_array((values, (X["user"].to_numpy(), X["item"].to_numpy())))


@pytest.mark.parametrize("make", [UltraGCNRecommender, MILKRecommender], ids=["ultragcn", "milk"])
@pytest.mark.parametrize("convert", [_csr, _polars, _arrow], ids=["csr", "polars", "arrow"])
def test_csr_polars_and_arrow_fit_the_same_model_as_the_dataframe(problem, fitted, make, convert):
    bunch, X = problem
    reference = fitted["ultragcn" if make is UltraGCNRecommender else "milk"]
    params = TINY if make is UltraGCNRecommender else TINY_MILK
    model = make(**params).fit(convert(X), item_features=bunch.item_features)
    assert model.user_ids_.tolist() == reference.user_ids_.tolist()
    assert model.item_ids_.tolist() == reference.item_ids_.tolist()
    pairs = pd.DataFrame({"user": np.repeat(X["user"].unique(), 20), "item": np.tile(np.arange(20), X["user"].nunique())})
    np.testing.assert_array_equal(model.predict(pairs), reference.predict(pairs))   # bit for bit
    pd.testing.assert_frame_equal(model.recommend(model.user_ids_, n=5), reference.recommend(model.user_ids_, n=5))


def test_weighted_csr_fits_the_dataframe_with_y(problem):
    bunch, X = problem
    weights = 1.0 + np.arange(len(X)) % 3
    reference = UltraGCNRecommender(**TINY).fit(X, weights, item_features=bunch.item_features)
    model = UltraGCNRecommender(**TINY).fit(_csr(X, weights), item_features=bunch.item_features)
    unweighted = UltraGCNRecommender(**TINY).fit(X, item_features=bunch.item_features)
    pairs = X.iloc[::3]
    np.testing.assert_array_equal(model.predict(pairs), reference.predict(pairs))
    assert not np.array_equal(model.predict(pairs), unweighted.predict(pairs))   # the weights counted
    # predict and score read a matrix too: one score per stored entry, in row order
    np.testing.assert_array_equal(model.predict(_csr(pairs)), reference.predict(pairs))
    assert model.score(_csr(X)) == reference.score(X)


def test_a_regressor_reads_the_matrix_values_as_ratings(problem):
    from invrec.eior import EIORRegressor

    bunch, X = problem
    ratings = 1.0 + np.arange(len(X)) % 5
    reference = _invariant(EIORRegressor).fit(X, ratings, item_features=bunch.item_features)
    model = _invariant(EIORRegressor).fit(_csr(X, ratings), item_features=bunch.item_features)
    np.testing.assert_array_equal(model.predict(X), reference.predict(X))
    assert model.rating_scale_ == reference.rating_scale_


def test_interactions_from_sparse_by_hand():
    # COO with an explicit zero, a duplicate entry and rows out of order; an empty row and column
    matrix = sp.coo_matrix(([1.0, 2.0, 0.0, 3.0, 4.0], ([2, 0, 1, 0, 2], [1, 3, 0, 3, 0])), shape=(4, 5))
    before = (matrix.data.copy(), matrix.row.copy(), matrix.col.copy())
    table, values = interactions_from_sparse(matrix)
    assert table.to_dict("list") == {"user": [0, 2, 2], "item": [3, 0, 1]}
    assert table["user"].dtype == np.int64 and isinstance(table.index, pd.RangeIndex)
    np.testing.assert_array_equal(values, [5.0, 4.0, 1.0])          # 2 + 3 summed, the 0 dropped
    for kept, now in zip(before, (matrix.data, matrix.row, matrix.col)):
        np.testing.assert_array_equal(kept, now)                      # the caller's matrix untouched
    for form in (matrix.tocsr(), matrix.tocsc(), sp.csr_array(matrix), sp.dok_array(matrix)):
        same, same_values = check_interactions(form)
        pd.testing.assert_frame_equal(same, table)
        np.testing.assert_array_equal(same_values, values)


def test_bad_sparse_input_names_the_problem():
    with pytest.raises(ValueError, match=r"sparse user x item matrix.*y must be None"):
        check_interactions(sp.eye(3, format="csr"), np.ones(3))
    with pytest.raises(ValueError, match=r"1 NaN or infinite value\(s\), first at \(row 1, column 2\)"):
        check_interactions(sp.csr_array(([1.0, np.nan], ([0, 1], [0, 2]))))
    with pytest.raises(ValueError, match="without a stored non-zero entry"):
        check_interactions(sp.csr_array((3, 3)))
    assert len(check_interactions(sp.csr_array((3, 3)), allow_empty=True)[0]) == 0
    with pytest.raises(ValueError, match="1-D sparse array"):
        check_interactions(sp.coo_array(np.array([1.0, 0.0, 2.0])))
    with pytest.raises(ValueError, match=r"y holds 1 negative value\(s\)"):
        PopularityRecommender().fit(sp.csr_array([[1.0, -1.0]]))


def test_the_library_works_without_polars_and_pyarrow():
    script = textwrap.dedent("""
        import sys
        sys.modules["polars"] = None          # import polars / pyarrow now raise ImportError
        sys.modules["pyarrow"] = None
        import pandas as pd, scipy.sparse as sp
        from invrec.baselines import PopularityRecommender
        X = pd.DataFrame({"user": [0, 0, 1], "item": [2, 3, 2]})
        a = PopularityRecommender().fit(X).recommend([1], n=2)
        b = PopularityRecommender().fit(sp.csr_array(([1.0, 1, 1], ([0, 0, 1], [2, 3, 2])))).recommend([1], n=2)
        assert a.equals(b) and a["item"].tolist() == [3], a
        print("ok")
    """)
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0 and done.stdout.strip() == "ok", done.stderr


# ---------------------------------------------------------------- other column names
@pytest.mark.parametrize("columns, rename", [
    (["userID", "itemID"], {"userID": "user", "itemID": "item"}),
    (["user_id", "item_id", "rating"], {"user_id": "user", "item_id": "item"}),
    (["UserId", "item"], {"UserId": "user"}),
    (["user", "ItemID"], {"ItemID": "item"}),
    (["userId", "movieId", "timestamp"], {"userId": "user", "movieId": "item"}),
    (["uid", "iid"], {"uid": "user", "iid": "item"}),
])
def test_other_id_spellings_get_the_exact_rename(columns, rename):
    X = pd.DataFrame({name: [0, 1, 1] for name in columns})
    before = X.copy()
    with pytest.raises(ValueError) as info:
        PopularityRecommender().fit(X)
    message = str(info.value)
    assert f"it has {columns}" in message
    assert message.endswith(f"X.rename(columns={rename!r}).")
    pd.testing.assert_frame_equal(X, before)                     # nothing renamed silently
    suggested = re.search(r"(X\.rename\(columns=\{.*\}\))\.$", message).group(1)
    fixed = eval(suggested, {"X": X})                            # noqa: S307 - the message's own fix
    assert PopularityRecommender().fit(fixed).n_users_ == 2


def test_ambiguous_or_unknown_spellings_are_not_guessed():
    X = pd.DataFrame({"userID": [0], "user_id": [1], "itemID": [2]})
    with pytest.raises(ValueError, match=r"'userID' or 'user_id' could be the 'user' column; pick one, "
                                         r"for example X\.rename\(columns=\{'userID': 'user', 'itemID': 'item'\}\)"):
        check_interactions(X)
    with pytest.raises(ValueError, match=r"it has \['a', 'b'\]\. Rename the id columns to 'user' and 'item', for "
                                         r"example X\.rename\(columns=\{'<user column>': 'user', "
                                         r"'<item column>': 'item'\}\)"):
        check_interactions(pd.DataFrame({"a": [0], "b": [1]}))
    with pytest.raises(ValueError, match=r"validation_data\.rename\(columns=\{'user_id': 'user'\}\)"):
        check_interactions(pd.DataFrame({"user_id": [0], "item": [1]}), name="validation_data")
