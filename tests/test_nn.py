"""Tests of invrec.nn: the UltraGCN-style scorer, its losses, the samplers and the item graph."""

import math

import numpy as np
import pytest
import scipy.sparse as sp
import torch
from hypothesis import given, settings, strategies as st

from invrec.nn import (UltraGCNModel, degree_weights, item_item_loss, item_item_neighbors, iterate_minibatches,
                       make_adam, pair_and_negative_scores, sample_negatives, ultragcn_loss)
from invrec.nn.sampling import expand_groups, n_negative_groups
from invrec.nn.scoring import _distinct

LN2, LN3, LN43 = math.log(2.0), math.log(3.0), math.log(4.0 / 3.0)


def gen(seed=0):
    return torch.Generator().manual_seed(seed)


def make_scorer(n_users=5, n_items=7, d=6, seed=0, **kw):
    g = gen(seed)
    feats = torch.rand(n_items, d, generator=g, dtype=torch.float32)
    kw.setdefault("id_dim", 3)
    kw.setdefault("content_dim", 4)
    return UltraGCNModel(n_users, n_items, feats, generator=g, **kw)


# --------------------------------------------------------------------------------------- losses

def _loss_inputs():
    # softplus(0) = ln2, softplus(ln3) = ln4 = 2 ln2, softplus(-ln3) = ln(4/3)
    pos = torch.tensor([0.0, LN3], dtype=torch.float64)
    neg = torch.tensor([[LN3, 0.0], [-LN3, 0.0]], dtype=torch.float64)
    beta_u = torch.tensor([0.5, 2.0], dtype=torch.float64)
    beta_pos = torch.tensor([1.0, 0.25], dtype=torch.float64)
    beta_neg = torch.tensor([1.0, 2.0], dtype=torch.float64)   # shared by both positives
    return pos, neg, beta_u, beta_pos, beta_neg


def test_ultragcn_loss_hand_values():
    pos, neg, bu, bp, bn = _loss_inputs()
    w = (1.0, 2.0, 3.0, 4.0)
    # positive weights: 1 + 2*0.5*1 = 2 ; 1 + 2*2*0.25 = 2
    pos_terms = [2 * LN2, 2 * LN43]
    # row 0 (beta_u=0.5): weights 3+4*0.5*1=5, 3+4*0.5*2=7 on softplus(ln3)=2ln2, softplus(0)=ln2
    # row 1 (beta_u=2):   weights 3+4*2*1=11, 3+4*2*2=19 on softplus(-ln3)=ln(4/3), softplus(0)
    neg_terms = [(5 * 2 * LN2 + 7 * LN2) / 2, (11 * LN43 + 19 * LN2) / 2]
    per_pos = [pos_terms[0] + neg_terms[0], pos_terms[1] + neg_terms[1]]
    got = ultragcn_loss(pos, neg, bu, bp, bn, w=w, reduction="none")
    np.testing.assert_allclose(got.numpy(), per_pos, rtol=1e-12)
    total = 20 * LN2 + 7.5 * LN43
    assert math.isclose(sum(per_pos), total)
    s = ultragcn_loss(pos, neg, bu, bp, bn, w=w, reduction="sum")
    m = ultragcn_loss(pos, neg, bu, bp, bn, w=w, reduction="mean")
    assert s.shape == () and math.isclose(s.item(), total, rel_tol=1e-12)
    assert math.isclose(m.item(), total / 2, rel_tol=1e-12)


def test_ultragcn_loss_default_weights_and_plain_bce():
    pos, neg, bu, bp, bn = _loss_inputs()
    # w2 = w4 = 0: plain BCE with unit weights; mean over positives of ln2/ln(4/3) + mean negs
    got = ultragcn_loss(pos, neg, bu, bp, bn, w=(1, 0, 1, 0), reduction="sum").item()
    want = LN2 + LN43 + (2 * LN2 + LN2) / 2 + (LN43 + LN2) / 2
    assert math.isclose(got, want, rel_tol=1e-12)
    d = ultragcn_loss(pos, neg, bu, bp, bn, reduction="sum").item()
    want_default = (1 + 0.5) * LN2 + (1 + 0.5) * LN43 \
        + ((1 + 0.5) * 2 * LN2 + (1 + 1) * LN2) / 2 + ((1 + 2) * LN43 + (1 + 4) * LN2) / 2
    assert math.isclose(d, want_default, rel_tol=1e-12)


def test_ultragcn_loss_shared_broadcast_equals_expanded():
    g = gen(1)
    B, N = 6, 4
    pos, neg = torch.randn(B, generator=g), torch.randn(B, N, generator=g)
    bu, bp, bn = torch.rand(B, generator=g), torch.rand(B, generator=g), torch.rand(N, generator=g)
    for red in ("mean", "sum", "none"):
        a = ultragcn_loss(pos, neg, bu, bp, bn, w=(1, 2, 3, 4), reduction=red)
        b = ultragcn_loss(pos, neg, bu, bp, bn.expand(B, N), w=(1, 2, 3, 4), reduction=red)
        torch.testing.assert_close(a, b)
    shared_scores = torch.randn(N, generator=g)
    torch.testing.assert_close(ultragcn_loss(pos, shared_scores, bu, bp, bn),
                               ultragcn_loss(pos, shared_scores.expand(B, N), bu, bp, bn))


def test_ultragcn_loss_is_stable_for_large_scores():
    big = torch.tensor([1e4, -1e4])
    loss = ultragcn_loss(big, big[:, None].clone(), torch.ones(2), torch.ones(2), torch.ones(1),
                         reduction="none")
    assert torch.isfinite(loss).all()
    assert math.isclose(loss[0].item(), 2 * 1e4, rel_tol=1e-6)   # (1+1) * softplus(1e4)
    assert math.isclose(loss[1].item(), 2 * 1e4, rel_tol=1e-6)   # (1+1) * softplus(-(-1e4))


def test_loss_rejects_bad_reduction_and_shapes():
    pos, neg, bu, bp, bn = _loss_inputs()
    with pytest.raises(ValueError, match="reduction"):
        ultragcn_loss(pos, neg, bu, bp, bn, reduction="avg")
    with pytest.raises(ValueError, match="neg_scores"):
        ultragcn_loss(pos, torch.zeros(3, 2, dtype=torch.float64), bu, bp, bn)


def test_degree_weights_exact():
    bu, bi = degree_weights(np.array([1, 3, 8, 0]), torch.tensor([0, 3, 8]), dtype=torch.float64)
    np.testing.assert_allclose(bu.numpy(), [math.sqrt(2), 2 / 3, 3 / 8, 1e10], rtol=1e-15)
    np.testing.assert_allclose(bi.numpy(), [1.0, 0.5, 1 / 3], rtol=1e-15)
    assert degree_weights([1], [1])[0].dtype == torch.get_default_dtype()


def test_item_item_loss_hand_values():
    user = torch.tensor([[1.0, 0.0], [0.0, 2.0]], dtype=torch.float64)
    # neighbour scores: row 0 -> 0, ln3 ; row 1 -> ln3 (via 2 * ln3/2), 0
    nb = torch.tensor([[[0.0, 5.0], [LN3, 1.0]], [[7.0, LN3 / 2], [0.0, 0.0]]],
                      dtype=torch.float64)
    w = torch.tensor([[2.0, 0.5], [1.0, 0.0]], dtype=torch.float64)
    # -log sigmoid(0) = ln2 ; -log sigmoid(ln3) = ln(4/3)
    rows = [2 * LN2 + 0.5 * LN43, 1 * LN43 + 0]
    np.testing.assert_allclose(item_item_loss(user, nb, w, reduction="none").numpy(), rows,
                               rtol=1e-12)
    assert math.isclose(item_item_loss(user, nb, w).item(), sum(rows) / 2, rel_tol=1e-12)


# ------------------------------------------------------------------------------------ item graph

def _tiny_interactions():
    # u0: items 0,1 ; u1: items 0,1,2 ; u2: items 2,3  (a count of 5 must count as one)
    return sp.csr_matrix(np.array([[1, 1, 0, 0], [1, 5, 1, 0], [0, 0, 1, 1]], dtype=float))


def test_item_item_neighbors_hand_weights():
    # G = R^T R: G00=2 G01=2 G02=1 G03=0 | G11=2 G12=1 G13=0 | G22=2 G23=1 | G33=1
    # g = row sums = [5, 5, 5, 2]; omega_ij = G_ij / (g_i - G_ii) * sqrt(g_i / g_j)
    # item 0: w01 = 2/3, w02 = 1/3 ; item 1: w10 = 2/3, w12 = 1/3
    # item 2: w20 = w21 = 1/3, w23 = (1/3) sqrt(5/2) ; item 3: w32 = 1/1 * sqrt(2/5)
    nbrs, w = item_item_neighbors(_tiny_interactions(), 3)
    assert nbrs.dtype == torch.long and w.dtype == torch.float32 and nbrs.shape == (4, 3)
    want_n = [[1, 2, 0], [0, 2, 1], [3, 0, 1], [2, 3, 3]]
    want_w = [[2 / 3, 1 / 3, 0], [2 / 3, 1 / 3, 0], [math.sqrt(2.5) / 3, 1 / 3, 1 / 3],
              [math.sqrt(0.4), 0, 0]]
    assert nbrs.tolist() == want_n
    np.testing.assert_allclose(w.numpy(), want_w, rtol=1e-6)
    # no item is its own neighbour with a positive weight
    self_slot = nbrs == torch.arange(4)[:, None]
    assert (w[self_slot] == 0).all()

    n1, w1 = item_item_neighbors(_tiny_interactions(), 1, chunk_size=1)
    assert n1[:, 0].tolist() == [1, 0, 3, 2]
    np.testing.assert_allclose(w1[:, 0].numpy(), [2 / 3, 2 / 3, math.sqrt(2.5) / 3,
                                                  math.sqrt(0.4)], rtol=1e-6)


def test_item_item_neighbors_more_than_catalog_pads():
    nbrs, w = item_item_neighbors(_tiny_interactions(), 6)
    assert nbrs.shape == (4, 6)
    assert (w[:, 4:] == 0).all() and (nbrs[:, 4:] == torch.arange(4)[:, None]).all()
    assert ((w > 0).sum(dim=1)).tolist() == [2, 2, 3, 1]


def test_item_item_neighbors_chunking_invariant():
    rng = np.random.default_rng(0)
    R = sp.random(30, 25, density=0.2, random_state=rng, format="csr")
    a = item_item_neighbors(R, 4)
    b = item_item_neighbors(R, 4, chunk_size=3)
    torch.testing.assert_close(a[1], b[1])
    # against a direct dense computation of the weights
    Rb = (R.toarray() > 0).astype(float)
    G = Rb.T @ Rb
    g = G.sum(1)
    with np.errstate(divide="ignore", invalid="ignore"):
        W = G / (g - np.diag(G))[:, None] * np.sqrt(g[:, None] / g[None, :])
    W = np.nan_to_num(W, nan=0.0, posinf=0.0)
    np.fill_diagonal(W, 0.0)
    want = -np.sort(-W, axis=1)[:, :4]
    np.testing.assert_allclose(a[1].numpy(), want, rtol=1e-5)
    got_w = np.take_along_axis(W, a[0].numpy(), axis=1)
    np.testing.assert_allclose(np.where(a[1].numpy() > 0, got_w, 0), a[1].numpy(), rtol=1e-5)


# ---------------------------------------------------------------------------------------- scorer

def test_scorer_shapes_and_parameters():
    s = make_scorer()
    assert s.dim == 7
    assert s.user_embedding.shape == (5, 7) and s.item_embedding.shape == (7, 3)
    assert s.projection.weight.shape == (4, 6) and (s.projection.bias == 0).all()
    assert "features" in dict(s.named_buffers()) and "features" not in dict(s.named_parameters())
    assert s.item_vectors().shape == (7, 7)
    assert s.item_vectors(torch.tensor([[0, 1], [2, 3], [4, 5]])).shape == (3, 2, 7)
    assert s.user_vectors(torch.tensor([1, 2])).shape == (2, 7)
    assert s(torch.tensor([0, 4]), torch.tensor([6, 6])).shape == (2,)
    assert s.score_users(torch.tensor([0, 1, 2])).shape == (3, 7)
    assert UltraGCNModel(2, 3, torch.zeros(3, 4), bias=False).projection.bias is None


def test_scorer_copies_read_only_arrays():
    arr = np.arange(6, dtype=np.float64).reshape(3, 2)
    arr.setflags(write=False)
    s = UltraGCNModel(2, 3, arr, generator=gen())
    assert s.features.dtype == torch.get_default_dtype()
    np.testing.assert_array_equal(s.features.numpy(), arr)
    s.features.mul_(0)          # the buffer is the module's own copy
    assert arr[2, 1] == 5


def test_scorer_init_is_reproducible_and_scaled():
    a, b, c = make_scorer(seed=3), make_scorer(seed=3), make_scorer(seed=4)
    for name, p in a.named_parameters():
        torch.testing.assert_close(p, dict(b.named_parameters())[name])
    assert not torch.equal(a.user_embedding, c.user_embedding)
    big = UltraGCNModel(400, 300, torch.zeros(300, 50), init_std=0.01, generator=gen())
    assert abs(big.user_embedding.std().item() - 0.01) < 5e-4
    assert abs(big.projection.weight.std().item() - 0.01) < 1e-3


def test_score_users_agrees_with_forward():
    s = make_scorer()
    mask = torch.rand(6, generator=gen(5))
    users = torch.arange(5).repeat_interleave(7)
    items = torch.arange(7).repeat(5)
    for m in (None, mask):
        full = s.score_users(torch.arange(5), mask=m)
        torch.testing.assert_close(full.reshape(-1), s(users, items, mask=m))
        # dot product of the vectors, by hand
        want = s.user_embedding @ s.item_vectors(None, m).T
        torch.testing.assert_close(full, want)


def test_content_free_scorer():
    s = UltraGCNModel(4, 5, torch.zeros(5, 0), id_dim=3, content_dim=8, generator=gen())
    assert s.projection is None and s.content_dim == 0 and s.dim == 3
    assert s.item_vectors().shape == (5, 3)
    torch.testing.assert_close(s.score_users(torch.arange(4)), s.user_embedding @ s.item_embedding.T)
    assert [g["weight_decay"] for g in s.l2_parameter_groups(1.0, 1.0)] == [2.0, 4.0]   # no content group
    none = UltraGCNModel(4, 5, None, id_dim=3, generator=gen())
    assert none.dim == 3
    with pytest.raises(ValueError):
        UltraGCNModel(4, 5, torch.zeros(5, 0), id_dim=0)
    with pytest.raises(ValueError, match="features"):
        UltraGCNModel(4, 5, torch.zeros(6, 2))


def test_mask_multiplies_features():
    s = make_scorer()
    with torch.no_grad():
        s.projection.bias.copy_(torch.tensor([0.1, -0.2, 0.3, 0.4]))
    content = s.item_vectors(None, torch.zeros(6))[:, s.id_dim:]
    torch.testing.assert_close(content, s.projection.bias.expand(7, 4))
    torch.testing.assert_close(s.item_vectors()[:, :3], s.item_embedding)
    mask = torch.tensor([1.0, 0.0, 0.5, 2.0, 0.0, 1.0])
    want = (s.features * mask) @ s.projection.weight.T + s.projection.bias
    torch.testing.assert_close(s.content_vectors(None, mask), want)
    torch.testing.assert_close(s.item_vectors(None, torch.ones(6)), s.item_vectors())
    with pytest.raises(ValueError, match="mask"):
        s.item_vectors(None, torch.ones(5))


def test_module_moves_with_to():
    s = make_scorer().double()
    assert s.features.dtype == torch.float64
    assert all(p.dtype == torch.float64 for p in s.parameters())
    assert s.score_users(torch.tensor([0])).dtype == torch.float64
    m = make_scorer().to(torch.device("meta"))
    assert m.features.is_meta and all(p.is_meta for p in m.parameters())
    assert m.score_users(torch.tensor([0], device="meta")).shape == (1, 7)


def test_gradients_reach_the_right_parameters():
    s = make_scorer(bias=True)
    users, items = torch.tensor([1, 3]), torch.tensor([2, 2])
    s(users, items).sum().backward()
    ug, ig = s.user_embedding.grad, s.item_embedding.grad
    assert ug[[1, 3]].abs().sum() > 0 and ug[[0, 2, 4]].abs().sum() == 0
    assert ig[2].abs().sum() > 0 and ig[[0, 1, 3, 4, 5, 6]].abs().sum() == 0
    assert s.projection.weight.grad.abs().sum() > 0 and s.projection.bias.grad.abs().sum() > 0
    assert s.features.grad is None
    mask = torch.full((6,), 0.5, requires_grad=True)
    s.zero_grad()
    s(users, items, mask=mask).sum().backward()
    assert mask.grad is not None and mask.grad.abs().sum() > 0


def whole_matrix_l2(model, id_weight_items=2.0):
    """InvRL's explicit L2 terms: ``||U||^2 + r ||V||^2`` and ``||W||^2 + ||b||^2`` (the oracle of
    the weight-decay groups)."""
    embeddings = model.user_embedding.square().sum() + id_weight_items * model.item_embedding.square().sum()
    projection = sum(p.square().sum() for p in model.projection.parameters())
    return embeddings, projection


@pytest.mark.parametrize("fused", [False, True])
def test_l2_parameter_groups_equal_explicit_regularization(fused):
    # Three Adam steps with the L2 terms in the loss and with them as coupled weight decay:
    # the same parameters (a check of the factor 2 and of which group gets which weight).
    torch.manual_seed(0)
    users, items = torch.tensor([0, 1, 2, 1]), torch.tensor([3, 0, 2, 2])
    l2e, l2c, ratio, scale = 0.3, 0.7, 2.5, 0.25
    explicit, decayed = make_scorer(), make_scorer()
    decayed.load_state_dict(explicit.state_dict())
    opt_a = torch.optim.Adam(explicit.parameters(), lr=0.05)
    groups = decayed.l2_parameter_groups(l2e, l2c, ratio, scale=scale)
    assert sum(len(g["params"]) for g in groups) == len(list(decayed.parameters()))
    opt_b = make_adam(groups, 0.05) if fused else torch.optim.Adam(groups, lr=0.05)
    for _ in range(3):
        opt_a.zero_grad()
        embeddings, projection = whole_matrix_l2(explicit, ratio)
        loss = explicit(users, items).square().sum() + scale * (l2e * embeddings + l2c * projection)
        loss.backward()
        opt_a.step()
        opt_b.zero_grad()
        decayed(users, items).square().sum().backward()
        opt_b.step()
    for (name, a), b in zip(explicit.named_parameters(), decayed.parameters()):
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-6, msg=name)


def test_l2_parameter_groups_without_content():
    s = UltraGCNModel(3, 4, None, id_dim=2)
    groups = s.l2_parameter_groups(0.1, 5.0, 3.0)
    assert [g["weight_decay"] for g in groups] == pytest.approx([0.2, 0.6])


def test_make_adam_falls_back_without_fused_kernel(monkeypatch):
    calls = []
    real = torch.optim.Adam

    def adam(params, **kw):
        calls.append(kw.get("fused"))
        if kw.get("fused"):
            raise RuntimeError("no fused kernel")
        return real(params, **kw)

    monkeypatch.setattr(torch.optim, "Adam", adam)
    opt = make_adam([torch.nn.Parameter(torch.ones(2))], 0.1, weight_decay=0.5)
    assert calls == [True, None] and opt.param_groups[0]["weight_decay"] == 0.5


# -------------------------------------------------------------------------------------- scoring

@pytest.mark.parametrize("shared, group_size", [(True, None), (False, None), (True, 2), (True, 3),
                                                (True, 1)])
def test_pair_and_negative_scores_match_naive(shared, group_size):
    s = make_scorer(n_users=6, n_items=9)
    g = gen(2)
    users = torch.randint(0, 6, (5,), generator=g)
    pos = torch.randint(0, 9, (5,), generator=g)
    neg = sample_negatives(9, 5, 4, shared=shared, group_size=group_size, generator=g)
    mask = torch.rand(6, generator=g, requires_grad=True)
    ps, ns = pair_and_negative_scores(s, users, pos, neg, mask=mask)
    assert ps.shape == (5,) and ns.shape == (5, 4)
    full = s.score_users(users, mask=mask)
    if neg.ndim == 1:
        want_neg = full[:, neg]
    else:   # positive b uses row b // ceil(B / G): groups of 2 -> rows 0,0,1,1,2; of 3 -> 0,0,0,1,1
        row_of = torch.arange(5) // -(-5 // neg.shape[0])
        want_neg = full.gather(1, neg[row_of])
    torch.testing.assert_close(ps, full[torch.arange(5), pos])
    torch.testing.assert_close(ns, want_neg)
    # gradients equal those of the naive computation
    coef = torch.randn(5, 4, generator=g)
    (ps.sum() + (coef * ns).sum()).backward()
    grads = [p.grad.clone() for p in s.parameters()] + [mask.grad.clone()]
    s.zero_grad()
    mask.grad = None
    (full[torch.arange(5), pos].sum() + (coef * want_neg).sum()).backward()
    for a, b in zip(grads, [p.grad for p in s.parameters()] + [mask.grad]):
        torch.testing.assert_close(a, b)


def test_pair_and_negative_scores_bad_shape():
    s = make_scorer()
    with pytest.raises(ValueError, match="neg_items"):
        pair_and_negative_scores(s, torch.tensor([0]), torch.tensor([1]), torch.zeros(2, 3).long())


@settings(max_examples=40, deadline=None)
@given(st.lists(st.integers(0, 19), min_size=1, max_size=60))
def test_distinct_matches_unique(values):
    items = torch.tensor(values)
    distinct, where = _distinct(items, 20)
    want, inv = torch.unique(items, return_inverse=True)
    assert torch.equal(distinct, want) and torch.equal(where, inv)


# ------------------------------------------------------------------------------------- sampling

def test_negative_groups_and_expansion():
    assert [n_negative_groups(10, g) for g in (1, 3, 4, 10, 11, None)] == [10, 4, 3, 1, 1, 1]
    with pytest.raises(ValueError, match="group_size"):
        n_negative_groups(4, 0)
    rows = expand_groups(torch.arange(3)[:, None], 5)     # ceil(5/3) = 2 per group
    assert rows.ravel().tolist() == [0, 0, 1, 1, 2]
    assert expand_groups(torch.arange(5)[:, None], 5).ravel().tolist() == [0, 1, 2, 3, 4]
    with pytest.raises(ValueError, match="groups"):
        expand_groups(torch.zeros(6, 2), 5)
    # grouped degree weights broadcast to the positives in the loss as the scorer does
    pos, neg = torch.zeros(5), torch.zeros(5, 2)
    beta_g = torch.tensor([[1.0, 1.0], [3.0, 3.0], [5.0, 5.0]])
    per_row = ultragcn_loss(pos, neg, torch.ones(5), torch.zeros(5), beta_g, reduction="none")
    full = ultragcn_loss(pos, neg, torch.ones(5), torch.zeros(5), expand_groups(beta_g, 5),
                         reduction="none")
    torch.testing.assert_close(per_row, full)
    assert per_row[0] == per_row[1] < per_row[2] == per_row[3] < per_row[4]


def test_sample_negatives_shapes_range_reproducible():
    a = sample_negatives(13, 7, 5, generator=gen(9))
    b = sample_negatives(13, 7, 5, generator=gen(9))
    assert a.shape == (5,) and a.dtype == torch.long and torch.equal(a, b)
    p = sample_negatives(13, 7, 5, shared=False, generator=gen(9))
    assert p.shape == (7, 5)
    big = sample_negatives(13, 1000, 50, shared=False, generator=gen(1))
    assert big.min() >= 0 and big.max() < 13
    assert not torch.equal(sample_negatives(13, 7, 5, generator=gen(10)), a)
    assert sample_negatives(13, 7, 5, generator=gen(9), device="cpu").device.type == "cpu"


def test_sample_negatives_roughly_uniform():
    n_items, n = 50, 200_000
    draws = sample_negatives(n_items, 1, n, generator=gen(3))
    counts = torch.bincount(draws, minlength=n_items).double()
    expected = n / n_items
    chi2 = ((counts - expected) ** 2 / expected).sum().item()
    # chi-square with 49 degrees of freedom: mean 49, sd ~9.9; 110 is past the 1e-6 tail
    assert chi2 < 110


def test_iterate_minibatches_covers_each_index_once():
    batches = list(iterate_minibatches(103, 10, generator=gen(4)))
    assert [len(b) for b in batches] == [10] * 10 + [3]
    allidx = torch.cat(batches)
    assert torch.equal(torch.sort(allidx).values, torch.arange(103))
    assert not torch.equal(allidx, torch.arange(103))
    again = torch.cat(list(iterate_minibatches(103, 10, generator=gen(4))))
    assert torch.equal(allidx, again)
    ordered = torch.cat(list(iterate_minibatches(103, 10, shuffle=False)))
    assert torch.equal(ordered, torch.arange(103))
    assert list(iterate_minibatches(0, 4)) == []
    with pytest.raises(ValueError):
        list(iterate_minibatches(5, 0))


# ----------------------------------------------------------------------------------- end to end

@pytest.fixture
def one_thread():
    """Run on one intra-op thread: tiny tensors gain nothing from two, and a busy machine makes
    two spinning threads wait on each other at every op (seconds instead of 0.1 s)."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(before)


def test_end_to_end_learns_planted_groups(one_thread):
    """Two user groups, each liking its half of the catalog: held-out positives outrank others."""
    g = gen(0)
    n_users, n_items, held = 40, 40, 4
    per_user = n_items // 2
    group = torch.arange(n_users) % 2
    half = n_items // 2
    choice = torch.argsort(torch.rand(n_users, half, generator=g), dim=1)[:, :per_user]
    liked = choice + group[:, None] * half                      # (n_users, per_user)
    train_items, test_items = liked[:, held:], liked[:, :held]
    users = torch.arange(n_users).repeat_interleave(per_user - held)
    items = train_items.reshape(-1)

    du = torch.bincount(users, minlength=n_users)
    di = torch.bincount(items, minlength=n_items)
    beta_u, beta_i = degree_weights(du, di)
    feats = torch.nn.functional.normalize(torch.rand(n_items, 8, generator=g), dim=1)
    scorer = UltraGCNModel(n_users, n_items, feats, id_dim=16, content_dim=8, generator=g)
    opt = torch.optim.Adam(scorer.parameters(), lr=0.05)
    for _ in range(100):
        for batch in iterate_minibatches(len(users), 128, generator=g):
            u, i = users[batch], items[batch]
            neg = sample_negatives(n_items, len(batch), 16, generator=g)
            ps, ns = pair_and_negative_scores(scorer, u, i, neg)
            loss = ultragcn_loss(ps, ns, beta_u[u], beta_i[i], beta_i[neg])
            embeddings, projection = whole_matrix_l2(scorer)
            loss = loss + 1e-4 * embeddings + 1e-3 * projection
            opt.zero_grad()
            loss.backward()
            opt.step()
            break  # one batch per step: 100 Adam steps in all

    with torch.no_grad():
        scores = scorer.score_users(torch.arange(n_users))
    pos_scores = scores.gather(1, test_items)                           # (n_users, held)
    rand_items = torch.randint(0, n_items, (n_users, 50), generator=g)
    is_pos = (rand_items[:, :, None] == liked[:, None, :]).any(-1)
    rand_scores = scores.gather(1, rand_items)
    cmp = (pos_scores[:, :, None] > rand_scores[:, None, :]).float()
    valid = (~is_pos)[:, None, :].expand_as(cmp)
    auc = cmp[valid].mean().item()
    assert auc > 0.8, auc
