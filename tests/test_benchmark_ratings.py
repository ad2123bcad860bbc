"""Checks of the rating benchmark's own models (benchmarks/ratings.py), without the data."""

import importlib.util
from pathlib import Path

import numpy as np
import pytest
import torch

from invrec.nn import RatingScale

_PATH = Path(__file__).resolve().parents[1] / "benchmarks" / "ratings.py"


@pytest.fixture(scope="module")
def ratings():
    spec = importlib.util.spec_from_file_location("bench_ratings", _PATH)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_bias_baseline_recovers_an_additive_table(ratings):
    # complete 3 x 4 table r = 3 + b_u + b_i with centred biases: shrinkage 0 recovers it exactly
    b_u, b_i = np.array([1.0, -0.5, -0.5]), np.array([0.5, 0.25, -0.25, -0.5])
    users, items = (a.ravel() for a in np.meshgrid(np.arange(3), np.arange(4), indexing="ij"))
    r = 3.0 + b_u[users] + b_i[items]
    mu, fu, fi = ratings.fit_bias(users, items, r, 3, 4, shrinkage=0.0, sweeps=20)
    assert mu == pytest.approx(3.0)
    np.testing.assert_allclose(fu, b_u, atol=1e-8)
    np.testing.assert_allclose(fi, b_i, atol=1e-8)


def test_bias_baseline_shrinkage_hand_value(ratings):
    # one user, items 0 (ratings 5, 5) and 1 (rating 2): mu = 4
    users, items, r = np.zeros(3, int), np.array([0, 0, 1]), np.array([5.0, 5.0, 2.0])
    mu, b_u, b_i = ratings.fit_bias(users, items, r, 1, 3, shrinkage=1.0, sweeps=1)
    # first sweep: b_i = sum(r - mu) / (n_i + 1) = [2/3, -2/2, 0]; b_u = sum(r - mu - b_i) / (3 + 1)
    np.testing.assert_allclose(b_i, [2 / 3, -1.0, 0.0])
    np.testing.assert_allclose(b_u, [((1 - 2 / 3) * 2 + (-2 + 1)) / 4])
    # separate shrinkages: l_u = 0 gives b_u = mean residual over the user's 3 ratings
    _, b_u0, b_i0 = ratings.fit_bias(users, items, r, 1, 3, shrinkage=(0.0, 1.0), sweeps=1)
    np.testing.assert_allclose(b_i0, b_i)
    np.testing.assert_allclose(b_u0, [((1 - 2 / 3) * 2 + (-2 + 1)) / 3])
    # predictions are clipped; unknown items get b_i = 0
    pred = ratings.predict_bias((mu, b_u, b_i), np.array([0, 0]), np.array([-1, 0]),
                                RatingScale(1.0, 4.5, 4.0))
    np.testing.assert_allclose(pred, [4.0 + b_u[0], 4.5])


def test_fused_rating_model_shapes_and_fusion_only_in_fused_score(ratings):
    g = torch.Generator().manual_seed(0)
    features = torch.rand(6, 5, generator=g)
    model = ratings.FusedRatingModel(4, 6, features, np.full(5, 0.5, np.float32), mode="attention",
                                     id_dim=3, content_dim=4, offset=3.0, generator=g)
    users, items = torch.tensor([0, 1, 3]), torch.tensor([5, 0, 2])
    fused, inv, var, weights = model(users, items)
    assert fused.shape == inv.shape == var.shape == (3,) and weights.shape == (3, 2)
    # the attention parameters receive gradient from the fused rating only
    (inv.sum() + var.sum()).backward()
    assert all(p.grad is None for p in model.fusion.parameters())
