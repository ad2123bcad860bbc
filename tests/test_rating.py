"""Tests of explicit-rating support: invrec.nn.rating and the rating metrics of invrec.metrics."""

import math
import pickle

import numpy as np
import pandas as pd
import pytest
import torch
from hypothesis import given, settings, strategies as st
from sklearn.base import BaseEstimator
from sklearn.model_selection import GridSearchCV, KFold

from invrec.metrics import RatingScorer, mae, make_rating_scorer, rmse
from invrec.nn import RatingHead, RatingScale, rating_loss


# ------------------------------------------------------------------------------------ nn.rating

def test_rating_scale_from_ratings_and_clip():
    scale = RatingScale.from_ratings(np.array([2, 4, 4, 5]))
    assert (scale.low, scale.high, scale.mean) == (2.0, 5.0, 3.75)
    np.testing.assert_array_equal(scale.clip([1.0, 3.0, 9.0]), [2.0, 3.0, 5.0])
    torch.testing.assert_close(scale.clip(torch.tensor([1.5, 5.5])), torch.tensor([2.0, 5.0]))
    with pytest.raises(ValueError, match="empty"):
        RatingScale.from_ratings([])
    with pytest.raises(ValueError, match="NaN or infinite"):
        RatingScale.from_ratings([1.0, np.nan])


def test_rating_head_hand_values_and_score_matrix():
    head = RatingHead(2, 3, offset=3.0)
    with torch.no_grad():
        head.user_bias.copy_(torch.tensor([0.5, -1.0]))
        head.item_bias.copy_(torch.tensor([0.0, 0.25, 2.0]))
    users, items = torch.tensor([0, 1, 1]), torch.tensor([2, 1, 0])
    scores = torch.tensor([0.1, 0.2, -0.3])
    # 3 + 0.5 + 2 + 0.1 ; 3 - 1 + 0.25 + 0.2 ; 3 - 1 + 0 - 0.3
    torch.testing.assert_close(head(users, items, scores), torch.tensor([5.6, 2.45, 1.7]))
    matrix = head.score_matrix(torch.tensor([1]), torch.zeros(1, 3))
    torch.testing.assert_close(matrix, torch.tensor([[2.0, 2.25, 4.0]]))


def test_rating_head_gradients_reach_only_the_rows_used():
    head = RatingHead(3, 4, offset=2.0)
    users, items = torch.tensor([0, 0]), torch.tensor([1, 3])
    scores = torch.zeros(2, requires_grad=True)
    rating_loss(head(users, items, scores), torch.tensor([3.0, 1.0])).backward()
    # predictions 2 and 2: d/dpred of mean sq error = (pred - target) = (-1, +1)
    torch.testing.assert_close(head.user_bias.grad, torch.tensor([0.0, 0.0, 0.0]))
    torch.testing.assert_close(head.item_bias.grad, torch.tensor([0.0, -1.0, 0.0, 1.0]))
    torch.testing.assert_close(scores.grad, torch.tensor([-1.0, 1.0]))
    assert [n for n, _ in head.named_buffers()] == ["offset"]


def test_rating_loss_reductions_and_weights():
    pred, target = torch.tensor([1.0, 4.0, 2.0]), torch.tensor([2.0, 2.0, 2.0])
    torch.testing.assert_close(rating_loss(pred, target, reduction="none"),
                               torch.tensor([1.0, 4.0, 0.0]))
    assert rating_loss(pred, target, reduction="sum").item() == 5.0
    assert math.isclose(rating_loss(pred, target).item(), 5.0 / 3.0, rel_tol=1e-6)
    weighted = rating_loss(pred, target, weights=torch.tensor([2.0, 0.5, 1.0]))
    assert math.isclose(weighted.item(), (2.0 + 2.0) / 3.0, rel_tol=1e-6)
    with pytest.raises(ValueError, match="same shape"):
        rating_loss(pred, target[:2])
    with pytest.raises(ValueError, match="reduction"):
        rating_loss(pred, target, reduction="max")


def test_biased_model_recovers_planted_biases():
    # ratings = 3 + b_u + b_i exactly: gradient descent on the head alone finds them
    rng = np.random.default_rng(0)
    b_u, b_i = rng.normal(size=6), rng.normal(size=5)
    users, items = np.meshgrid(np.arange(6), np.arange(5), indexing="ij")
    users, items = torch.as_tensor(users.ravel()), torch.as_tensor(items.ravel())
    target = torch.as_tensor(3.0 + b_u[users] + b_i[items], dtype=torch.float32)
    head = RatingHead(6, 5, offset=3.0)
    opt = torch.optim.Adam(head.parameters(), lr=0.05)
    for _ in range(400):
        opt.zero_grad()
        rating_loss(head(users, items, torch.zeros(30)), target).backward()
        opt.step()
    pred = head(users, items, torch.zeros(30)).detach()
    assert rmse(target.numpy(), pred.numpy()) < 1e-2


# ----------------------------------------------------------------------------------- metrics

def test_rmse_and_mae_hand_values():
    assert math.isclose(rmse([4, 3, 5], [3.5, 3, 3]), math.sqrt(4.25 / 3))
    assert math.isclose(mae([4, 3, 5], [3.5, 3, 3]), 2.5 / 3)
    assert rmse([1, 2], [1, 2]) == 0.0 and mae([1, 2], [1, 2]) == 0.0
    assert rmse([0.0], [3.0]) == 3.0


@settings(max_examples=60, deadline=None)
@given(st.lists(st.tuples(st.floats(-10, 10), st.floats(-10, 10)), min_size=1, max_size=30))
def test_mae_bounds_rmse(pairs):
    true, pred = np.array(pairs).T
    # mean |e| <= sqrt(mean e^2) <= max |e|
    assert mae(true, pred) <= rmse(true, pred) + 1e-12
    assert rmse(true, pred) <= np.abs(true - pred).max() + 1e-12


def test_rating_metric_errors():
    with pytest.raises(ValueError, match="same length"):
        rmse([1, 2], [1])
    with pytest.raises(ValueError, match="empty"):
        mae([], [])
    with pytest.raises(ValueError, match="finite"):
        rmse([1, 2], [1, np.nan])


class UserMeanRater(BaseEstimator):
    """Predicts each user's mean rating shrunk towards the global mean (a test double)."""

    def __init__(self, shrinkage=0.0):
        self.shrinkage = shrinkage

    def fit(self, X, y):
        users = np.asarray(X)[:, 0]
        y = np.asarray(y, dtype=float)
        self.mean_ = y.mean()
        frame = pd.DataFrame({"u": users, "r": y - self.mean_})
        agg = frame.groupby("u")["r"].agg(["sum", "count"])
        self.bias_ = agg["sum"] / (agg["count"] + self.shrinkage)
        return self

    def predict(self, X):
        users = np.asarray(X)[:, 0]
        return self.mean_ + self.bias_.reindex(users).fillna(0.0).to_numpy()


def test_rating_scorer_hand_value_with_y_and_with_a_rating_column():
    model = UserMeanRater().fit(np.array([[0, 0], [0, 1], [1, 0]]), [4.0, 2.0, 5.0])
    # mean 11/3; user 0 -> 3, user 1 -> 5
    held_out = pd.DataFrame({"user": [0, 1, 1], "item": [2, 1, 2], "rating": [4.0, 3.0, 5.0]})
    expected_rmse = math.sqrt((1.0 + 4.0 + 0.0) / 3)
    assert math.isclose(make_rating_scorer()(model, held_out), -expected_rmse)
    assert math.isclose(make_rating_scorer("mae")(model, held_out[["user", "item"]],
                                                  held_out["rating"]), -1.0)
    with pytest.raises(ValueError, match="no 'rating' column"):
        make_rating_scorer()(model, held_out[["user", "item"]])


def test_rating_scorer_skip_missing():
    class Partial:
        def predict(self, X):
            return np.array([3.0, np.nan, 5.0])

    X = pd.DataFrame({"user": [0, 1, 2], "item": [0, 0, 0]})
    with pytest.raises(ValueError, match="skip_missing=True"):
        make_rating_scorer()(Partial(), X, [4.0, 1.0, 5.0])
    assert make_rating_scorer("mae", skip_missing=True)(Partial(), X, [4.0, 1.0, 5.0]) == -0.5


def test_rating_scorer_in_grid_search_prefers_the_better_setting():
    rng = np.random.default_rng(0)
    n = 400
    X = np.column_stack([rng.integers(0, 40, n), rng.integers(0, 30, n)])
    y = 3.0 + rng.normal(scale=1.0, size=n)          # no user effect: shrinkage helps
    search = GridSearchCV(UserMeanRater(), {"shrinkage": [0.0, 50.0]},
                          scoring=make_rating_scorer("rmse"), cv=KFold(3, shuffle=True,
                                                                       random_state=0))
    search.fit(X, y)
    assert search.best_params_ == {"shrinkage": 50.0}
    assert np.all(search.cv_results_["mean_test_score"] < 0)    # negated errors


def test_rating_scorer_repr_validation_and_pickle():
    scorer = make_rating_scorer("mae", column="stars")
    assert repr(scorer) == "make_rating_scorer(metric='mae', column='stars', skip_missing=False)"
    assert isinstance(pickle.loads(pickle.dumps(scorer)), RatingScorer)
    with pytest.raises(ValueError, match="metric must be one of"):
        make_rating_scorer("mse")
    with pytest.raises(ValueError, match="skip_missing"):
        make_rating_scorer(skip_missing="yes")
