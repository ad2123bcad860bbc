"""EIIL environment inference: the adversarial partition and the per-row scale gradients."""

import numpy as np
import pandas as pd
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from sklearn.metrics import adjusted_rand_score
from torch.nn import functional as F

from invrec.invariance.eiil import (eiil_partition, eiil_penalty, infer_environments_eiil,
                                    scale_gradients)
from invrec.nn import UltraGCNModel, degree_weights

torch.set_num_threads(1)


def _seeded(seed=0):
    return torch.Generator().manual_seed(seed)


def _opposite_halves(n=200, seed=0):
    """Half the rows with g > 0, half with g < 0, pooled mean about 0; true labels = sign."""
    rng = np.random.default_rng(seed)
    magnitude = rng.uniform(0.1, 1.0, n)
    sign = rng.permutation(np.repeat([1.0, -1.0], n // 2))
    g = torch.as_tensor(sign * magnitude, dtype=torch.float32)
    return g, (sign > 0).astype(int)


# ----------------------------------------------------------------------------- the penalty
def test_penalty_of_hard_labels_matches_soft_one_hot():
    g = torch.tensor([0.3, -1.0, 2.0, 0.5])
    labels = torch.tensor([0, 1, 2, 1])
    soft = F.one_hot(labels, 3).float()
    assert torch.isclose(eiil_penalty(g, labels), eiil_penalty(g, soft))
    expected = (0.3 / 4) ** 2 + (-0.5 / 4) ** 2 + (2.0 / 4) ** 2
    assert float(eiil_penalty(g, labels)) == pytest.approx(expected)
    by_mass = 0.3 ** 2 + (-0.5 / 2) ** 2 + 2.0 ** 2
    assert float(eiil_penalty(g, labels, normalization="environment")) == pytest.approx(by_mass)


def test_penalty_counts_empty_environments_as_zero():
    g = torch.tensor([1.0, -1.0])
    labels = torch.tensor([0, 0])
    for normalization in ("rows", "environment"):
        assert float(eiil_penalty(g, labels, n_environments=3, normalization=normalization)) == 0.0


# ----------------------------------------------------------------------------- (a) ground truth
@pytest.mark.parametrize("n_environments", [2, 3])
def test_partition_separates_opposite_gradients_exactly(n_environments):
    g, truth = _opposite_halves()
    assert abs(float(g.mean())) < 0.1 * float(g.abs().mean())
    labels, info = eiil_partition(g, n_environments, generator=_seeded(0))
    assert adjusted_rand_score(truth, labels.numpy()) == 1.0
    assert sorted(s for s in info["sizes"] if s) == [100, 100]


def test_partition_is_the_sign_split_with_an_unbalanced_pool():
    """Most rows under-confident (g < 0), a few over-confident: still split by sign."""
    rng = np.random.default_rng(1)
    g = torch.as_tensor(np.concatenate([-rng.uniform(0.1, 1, 170), rng.uniform(0.1, 1, 30)]),
                        dtype=torch.float32)
    labels, _ = eiil_partition(g, generator=_seeded(3))
    assert adjusted_rand_score((g > 0).numpy(), labels.numpy()) == 1.0


def test_same_sign_gradients_stay_in_one_environment():
    g = torch.linspace(0.1, 1.0, 50)
    labels, info = eiil_partition(g, generator=_seeded(0))
    assert len(set(labels.tolist())) == 1
    assert info["penalty"] == pytest.approx(float(g.mean()) ** 2, rel=1e-5)


def test_mass_normalisation_isolates_extreme_rows():
    """The per-environment mean risk is degenerate: a few extreme rows get their own environment."""
    g = torch.randn(400, generator=_seeded(4)) - 0.3
    labels, info = eiil_partition(g, normalization="environment", generator=_seeded(0))
    assert min(info["sizes"]) < 40
    small = int(np.argmin(info["sizes"]))
    assert float(g[labels == small].abs().min()) > float(g.abs().quantile(0.8))
    # ... and its penalty beats the sign split's under that normalisation
    sign = eiil_penalty(g, (g > 0).long(), normalization="environment")
    assert info["penalty"] > float(sign)


# ----------------------------------------------------------------------------- (b) a maximum
@pytest.mark.parametrize("n_environments", [2, 3])
def test_partition_beats_random_partitions(n_environments):
    g = torch.randn(300, generator=_seeded(5)) + 0.2
    labels, info = eiil_partition(g, n_environments, generator=_seeded(0))
    assert info["penalty"] == pytest.approx(float(eiil_penalty(g, labels)), rel=1e-6)
    random_penalties = [
        float(eiil_penalty(g, torch.randint(0, n_environments, (300,), generator=_seeded(s)),
                           n_environments=n_environments))
        for s in range(50)
    ]
    assert info["penalty"] >= max(random_penalties)
    soft = torch.softmax(torch.randn(300, n_environments, generator=_seeded(9)) * 3, dim=1)
    assert info["penalty"] >= float(eiil_penalty(g, soft))
    # the history ascends (up to Adam's noise) towards the final soft penalty
    history = info["history"]
    assert history.shape == (2000,)
    assert float(history[-1]) > float(history[0])
    assert info["soft_penalty"] <= info["penalty"] + 1e-6


@settings(max_examples=15, deadline=None)
@given(st.lists(st.floats(0.01, 10.0), min_size=2, max_size=60),
       st.lists(st.booleans(), min_size=2, max_size=60), st.integers(0, 2**16))
def test_partition_reaches_the_sign_split_maximum(magnitudes, signs, seed):
    """The maximum of sum_e (sum_i q_ie g_i / n)^2 over partitions is the sign split's."""
    n = min(len(magnitudes), len(signs))
    g = torch.tensor([m if s else -m for m, s in zip(magnitudes[:n], signs[:n])], dtype=torch.float64)
    labels, info = eiil_partition(g, steps=400, learning_rate=0.05, generator=_seeded(seed))
    best = float(eiil_penalty(g, (g > 0).long(), n_environments=2))
    assert info["penalty"] == pytest.approx(best, rel=1e-9, abs=1e-12)
    random = torch.randint(0, 2, (n,), generator=_seeded(seed + 1))
    assert info["penalty"] >= float(eiil_penalty(g, random, n_environments=2)) - 1e-12


# ----------------------------------------------------------------------------- (c) contract
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("n_environments", [1, 2, 4])
def test_shapes_and_dtypes(dtype, n_environments):
    g = torch.randn(37, generator=_seeded(0)).to(dtype)
    labels, info = eiil_partition(g, n_environments, steps=20, generator=_seeded(1))
    assert labels.dtype == torch.long and labels.shape == (37,) and labels.device == g.device
    assert 0 <= int(labels.min()) and int(labels.max()) < n_environments
    assert info["assignment"].shape == (37, n_environments)
    assert info["assignment"].dtype == dtype
    assert torch.allclose(info["assignment"].sum(1), torch.ones(37, dtype=dtype))
    assert sum(info["sizes"]) == 37 and len(info["sizes"]) == n_environments
    assert isinstance(info["penalty"], float) and isinstance(info["soft_penalty"], float)


def test_integer_gradients_and_zero_gradients_are_accepted():
    labels, info = eiil_partition(torch.tensor([1, -1, 2, -2]), steps=200, generator=_seeded(0))
    assert labels[0] == labels[2] != labels[1] == labels[3]
    labels, info = eiil_partition(torch.zeros(5), steps=10, generator=_seeded(0))
    assert labels.shape == (5,) and info["penalty"] == 0.0


def test_seeded_generator_is_deterministic():
    g = torch.randn(120, generator=_seeded(2))
    a, info_a = eiil_partition(g, 3, steps=200, generator=_seeded(7))
    b, info_b = eiil_partition(g, 3, steps=200, generator=_seeded(7))
    assert torch.equal(a, b)
    assert torch.equal(info_a["assignment"], info_b["assignment"])
    assert torch.equal(info_a["history"], info_b["history"])
    _, info_c = eiil_partition(g, 3, steps=0, generator=_seeded(8))
    _, info_d = eiil_partition(g, 3, steps=0, generator=_seeded(7))
    assert not torch.equal(info_c["assignment"], info_d["assignment"])


@pytest.mark.parametrize("bad, message", [
    (torch.ones(2, 2), "1-D"), (torch.empty(0), "empty"), (torch.tensor([1.0, float("nan")]), "NaN"),
])
def test_invalid_gradients_raise(bad, message):
    with pytest.raises(ValueError, match=message):
        eiil_partition(bad)


def test_invalid_settings_raise():
    g = torch.randn(4)
    with pytest.raises(ValueError, match="normalization"):
        eiil_partition(g, normalization="mean")
    with pytest.raises(ValueError, match="n_environments"):
        eiil_partition(g, 0)
    with pytest.raises(ValueError, match="steps"):
        eiil_partition(g, steps=-1)
    with pytest.raises(ValueError, match="assignment"):
        eiil_penalty(g, torch.ones(3, 2))


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_partition_on_cuda_with_a_cpu_generator():
    g, truth = _opposite_halves()
    labels, info = eiil_partition(g.cuda(), generator=_seeded(0))
    assert labels.device.type == "cuda" and info["assignment"].device.type == "cuda"
    assert adjusted_rand_score(truth, labels.cpu().numpy()) == 1.0


# ----------------------------------------------------------------------------- (d) scale gradients
def _tiny_model(seed=0, n_users=5, n_items=7, d=4):
    gen = _seeded(seed)
    features = torch.rand(n_items, d, generator=gen)
    model = UltraGCNModel(n_users, n_items, features, id_dim=3, content_dim=2, init_std=0.5,
                          generator=gen).double()
    return model


def _rows(n=12, n_users=5, n_items=7, seed=1):
    gen = _seeded(seed)
    return (torch.randint(0, n_users, (n,), generator=gen),
            torch.randint(0, n_items, (n,), generator=gen))


def _explicit_row_losses(model, users, items, negatives, beta_u, beta_i, scale, w):
    """Row ``b``'s loss with its scores multiplied by ``scale[b]``, written out by hand."""
    u = model.user_vectors(users)
    pos = (u * model.item_vectors(items)).sum(-1)
    neg = torch.einsum("bd,bnd->bn", u, model.item_vectors(negatives))
    bu = beta_u[users]
    pos_w = w[0] + w[1] * bu * beta_i[items]
    neg_w = w[2] + w[3] * bu.unsqueeze(1) * beta_i[negatives]
    return pos_w * F.softplus(-scale * pos) + (neg_w * F.softplus(scale.unsqueeze(1) * neg)).mean(1)


@pytest.mark.parametrize("w", [(1.0, 1.0, 1.0, 1.0), (0.5, 2.0, 1.5, 0.0)])
def test_scale_gradients_match_finite_differences_and_closed_form(w):
    model = _tiny_model()
    users, items = _rows()
    n_neg = 4
    g = scale_gradients(model, users, items, n_negatives=n_neg, loss_weights=w, generator=_seeded(3))
    assert g.shape == (12,) and g.dtype == torch.float64
    # the same draw of per-row negatives
    negatives = torch.randint(0, 7, (12, n_neg), generator=_seeded(3))
    beta_u, beta_i = degree_weights(torch.bincount(users, minlength=5), torch.bincount(items, minlength=7),
                                    dtype=torch.float64)
    with torch.no_grad():
        h = 1e-5
        ones = torch.ones(12, dtype=torch.float64)
        up = _explicit_row_losses(model, users, items, negatives, beta_u, beta_i, ones + h, w)
        down = _explicit_row_losses(model, users, items, negatives, beta_u, beta_i, ones - h, w)
    torch.testing.assert_close(g, (up - down) / (2 * h), rtol=1e-6, atol=1e-9)
    # closed form: d/ds softplus(-s x) = -x sigmoid(-x), d/ds softplus(s x) = x sigmoid(x) at s = 1
    with torch.no_grad():
        u = model.user_vectors(users)
        pos = (u * model.item_vectors(items)).sum(-1)
        neg = torch.einsum("bd,bnd->bn", u, model.item_vectors(negatives))
        bu = beta_u[users]
        closed = (-(w[0] + w[1] * bu * beta_i[items]) * pos * torch.sigmoid(-pos)
                  + ((w[2] + w[3] * bu.unsqueeze(1) * beta_i[negatives]) * neg * torch.sigmoid(neg)).mean(1))
    torch.testing.assert_close(g, closed, rtol=1e-10, atol=1e-12)


def test_scale_gradients_match_per_row_autograd_with_given_degrees_and_shared_negatives():
    model = _tiny_model(seed=4)
    users, items = _rows(n=9, seed=2)
    user_degree = torch.tensor([3.0, 1.0, 4.0, 2.0, 6.0])
    item_degree = torch.arange(1.0, 8.0)
    g = scale_gradients(model, users, items, 7, n_negatives=5, user_degree=user_degree,
                        item_degree=item_degree, shared_negatives=True, generator=_seeded(5))
    negatives = torch.randint(0, 7, (5,), generator=_seeded(5)).expand(9, -1)
    beta_u, beta_i = degree_weights(user_degree, item_degree, dtype=torch.float64)
    expected = []
    for b in range(9):        # one scalar scale per row, one autograd call each
        s = torch.ones(1, dtype=torch.float64, requires_grad=True)
        loss = _explicit_row_losses(model, users[b:b + 1], items[b:b + 1], negatives[b:b + 1],
                                    beta_u, beta_i, s, (1.0, 1.0, 1.0, 1.0))
        (grad,) = torch.autograd.grad(loss.sum(), s)
        expected.append(grad)
    torch.testing.assert_close(g, torch.cat(expected), rtol=1e-10, atol=1e-12)


def test_scale_gradients_are_chunk_invariant_and_leave_the_model_alone():
    model = _tiny_model(seed=6)
    users, items = _rows(n=25, seed=3)
    before = [p.detach().clone() for p in model.parameters()]
    whole = scale_gradients(model, users, items, n_negatives=3, chunk_size=100, generator=_seeded(0))
    chunked = scale_gradients(model, users, items, n_negatives=3, chunk_size=4, generator=_seeded(0))
    torch.testing.assert_close(whole, chunked, rtol=1e-12, atol=1e-15)
    assert all(p.grad is None for p in model.parameters())
    assert all(torch.equal(a, b) for a, b in zip(before, model.parameters()))
    again = scale_gradients(model, users, items, n_negatives=3, generator=_seeded(0))
    assert torch.equal(whole, again)
    with pytest.raises(ValueError, match="same length"):
        scale_gradients(model, users, items[:3])
    with pytest.raises(ValueError, match="chunk_size"):
        scale_gradients(model, users, items, chunk_size=0)


def test_infer_environments_eiil_on_a_fitted_backbone():
    from invrec.baselines import UltraGCNRecommender
    from invrec.datasets import make_multimodal_interactions

    data = make_multimodal_interactions(n_users=30, n_items=40, random_state=0)
    model = UltraGCNRecommender(embedding_dim=8, content_dim=4, max_epochs=2, batch_size=128,
                                early_stopping=False, random_state=0, device="cpu")
    X = data.interactions[["user", "item"]]
    model.fit(X, item_features=data.item_features)
    users = torch.as_tensor(pd.Index(model.user_ids_).get_indexer(X["user"]))
    items = torch.as_tensor(pd.Index(model.item_ids_).get_indexer(X["item"]))
    assert int(users.min()) >= 0 and int(items.min()) >= 0
    labels, info = infer_environments_eiil(model.module_, users, items, 2, n_negatives=10, steps=300,
                                           generator=_seeded(0))
    g = info["scale_gradients"]
    assert labels.shape == (len(X),) and g.shape == (len(X),)
    assert adjusted_rand_score((g > 0).numpy(), labels.numpy()) == 1.0
