"""Exact tests of the invariant-learning parts of invrec.nn (PaInvRL, EIOR): MGDA, penalties,
the stochastic-gate mask, batched environment models and their reassignment, mask objectives and
the convert module."""


import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from torch.nn import functional as F

from invrec.nn import UltraGCNModel, degree_weights, ultragcn_loss
from invrec.invariance import EnvironmentModels, StochasticGateMask, environment_risks, gradient_variance_penalty, group_by_environment, infer_environments, irmv1_penalty, learn_invariant_mask, mgda_weight, normalized_mgda_weight, reassign_environments, vrex_penalty
from invrec.invariance.invariant_mask import MaskObjectives
from invrec.invariance.pareto import flat_gradient

GRID = np.linspace(0.0, 1.0, 2001)


def _grid_min(g1, g2):
    g1, g2 = np.asarray(g1, float), np.asarray(g2, float)
    norms = [np.sum((t * g1 + (1 - t) * g2) ** 2) for t in GRID]
    return GRID[int(np.argmin(norms))], min(norms)


def _norm2(g1, g2, t):
    g1, g2 = np.asarray(g1, float), np.asarray(g2, float)
    return float(np.sum((t * g1 + (1 - t) * g2) ** 2))


# ---------------------------------------------------------------- MGDA
vectors = st.lists(st.floats(-10, 10, allow_nan=False, width=32), min_size=1, max_size=6)


@settings(max_examples=60, deadline=None)
@given(vectors, vectors)
def test_mgda_closed_form_matches_grid_minimum(a, b):
    n = min(len(a), len(b))
    g1, g2 = a[:n], b[:n]
    gamma = mgda_weight(torch.tensor(g1), torch.tensor(g2))
    assert 0.0 <= gamma <= 1.0
    t_grid, best = _grid_min(g1, g2)
    # the closed form is at least as good as the best grid point (up to float error)
    assert _norm2(g1, g2, gamma) <= best + 1e-6 * (1 + best)
    if np.sum((np.asarray(g1) - np.asarray(g2)) ** 2) > 1e-3:   # unique minimiser
        assert abs(gamma - t_grid) <= 1e-3 + 1e-3


@settings(max_examples=40, deadline=None)
@given(vectors, st.floats(0.05, 20))
def test_mgda_parallel_gradients_pick_the_shorter(a, c):
    g1 = torch.tensor(a, dtype=torch.float64)
    if float(g1.norm()) < 1e-3 or abs(c - 1) < 1e-3:
        return
    gamma = mgda_weight(g1, c * g1)
    assert gamma == (1.0 if c > 1 else 0.0)


@settings(max_examples=40, deadline=None)
@given(vectors, st.floats(0.05, 20))
def test_mgda_opposite_gradients_cancel(a, c):
    g1 = torch.tensor(a, dtype=torch.float64)
    if float(g1.norm()) < 1e-3:
        return
    gamma = mgda_weight(g1, -c * g1)
    assert gamma == pytest.approx(c / (1 + c), abs=1e-9)
    assert float((gamma * g1 - (1 - gamma) * c * g1).norm()) == pytest.approx(0.0, abs=1e-7)


def test_mgda_edge_cases():
    assert mgda_weight(torch.ones(3), torch.ones(3)) == 0.5            # identical
    assert mgda_weight(torch.zeros(2), torch.tensor([1.0, 2.0])) == 1.0  # g1 = 0 is Pareto-stationary
    assert mgda_weight(torch.tensor([1.0, 0.0]), torch.tensor([0.0, 1.0])) == 0.5


@settings(max_examples=60, deadline=None)
@given(vectors, vectors, st.floats(1e-3, 1e3), st.floats(1e-3, 1e3))
def test_normalized_mgda_moves_both_objectives_equally_at_any_scale(a, b, c1, c2):
    n = min(len(a), len(b))
    g1 = torch.tensor(a[:n], dtype=torch.float64)
    g2 = torch.tensor(b[:n], dtype=torch.float64)
    if float(g1.norm()) < 1e-3 or float(g2.norm()) < 1e-3:
        return
    gamma = normalized_mgda_weight(c1 * g1, c2 * g2)
    # the raw combination is parallel to the bisector of the unit directions ...
    step = gamma * c1 * g1 + (1 - gamma) * c2 * g2
    bisector = g1 / g1.norm() + g2 / g2.norm()
    if float(bisector.norm()) > 1e-6:
        cos = float(step @ bisector / (step.norm() * bisector.norm()))
        assert cos == pytest.approx(1.0, abs=1e-6)
    # ... with equal contributions of the two objectives, whatever their scales
    assert gamma * c1 * float(g1.norm()) == pytest.approx((1 - gamma) * c2 * float(g2.norm()), rel=1e-9)


def test_normalized_mgda_hand_values_and_edge_cases():
    assert normalized_mgda_weight(torch.tensor([1.0, 0.0]), torch.tensor([0.0, 3.0])) == 0.75
    assert normalized_mgda_weight(torch.tensor([2.0]), torch.tensor([-6.0])) == 0.75   # opposite
    assert normalized_mgda_weight(torch.zeros(2), torch.tensor([1.0, 0.0])) == 1.0     # g1 stationary
    assert normalized_mgda_weight(torch.zeros(2), torch.zeros(2)) == 0.5
    with pytest.raises(ValueError, match="same number"):
        normalized_mgda_weight(torch.ones(2), torch.ones(3))


# ---------------------------------------------------------------- penalties
def test_gradient_variance_penalty_hand_value():
    # K=3, c=1, d=2; column 0: values 1, 2, 6 (mean 3): sum of squares 4 + 1 + 9 = 14;
    # column 1: equal: 0. Weights (0.5, 2): (14 * 0.5)^2 + 0 = 49.
    g = torch.tensor([[[1.0, 4.0]], [[2.0, 4.0]], [[6.0, 4.0]]])
    assert float(gradient_variance_penalty(g, torch.tensor([0.5, 2.0]))) == pytest.approx(49.0)
    assert float(gradient_variance_penalty(g)) == pytest.approx(196.0)
    assert float(gradient_variance_penalty(g[:1])) == 0.0


def test_vrex_penalty_hand_value():
    assert float(vrex_penalty(torch.tensor([1.0, 2.0, 6.0]))) == pytest.approx(14.0 / 3.0)


def test_irmv1_penalty_hand_value_and_gradient():
    scores = torch.tensor([0.5, -1.0, 2.0])
    env = torch.tensor([0, 1, 1])
    s = torch.ones(2, requires_grad=True)
    risk = F.softplus(-scores * s[env])             # BCE with target 1, per row
    total = risk[env == 0].mean() + risk[env == 1].mean()
    sig = torch.sigmoid
    d0 = -0.5 * sig(torch.tensor(-0.5))
    d1 = (1.0 * sig(torch.tensor(1.0)) - 2.0 * sig(torch.tensor(-2.0))) / 2
    expected = float(d0 ** 2 + d1 ** 2)
    penalty = irmv1_penalty(total, s)
    assert float(penalty.detach()) == pytest.approx(expected, rel=1e-6)
    assert penalty.requires_grad                      # differentiable: built with create_graph


# ---------------------------------------------------------------- stochastic gates
def test_stochastic_gate_mask():
    gate = StochasticGateMask(4, sigma=0.1, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        gate.mu.copy_(torch.tensor([-1.0, -0.2, 0.3, 0.9]))
    gate.eval()
    assert gate().tolist() == pytest.approx([0.0, 0.3, 0.8, 1.0])
    gate.train()
    noisy = gate().detach()
    assert not torch.allclose(noisy, torch.tensor([0.0, 0.3, 0.8, 1.0]))
    assert float(noisy.min()) >= 0 and float(noisy.max()) <= 1
    assert gate.l2().item() == pytest.approx(1 + 0.04 + 0.09 + 0.81)


# ---------------------------------------------------------------- environments
@settings(max_examples=30, deadline=None)
@given(st.lists(st.integers(0, 3), min_size=1, max_size=40))
def test_group_by_environment_places_every_row_once(labels):
    env = torch.tensor(labels)
    index, valid = group_by_environment(env, 4)
    picked = index[valid]
    assert sorted(picked.tolist()) == list(range(len(labels)))
    rows_env = torch.arange(4).unsqueeze(1).expand_as(index)[valid]
    assert torch.equal(env[picked], rows_env)
    assert valid.sum(1).tolist() == torch.bincount(env, minlength=4).tolist()


def test_reassignment_rule_is_argmax_of_scores():
    scores = torch.tensor([[0.1, 2.0, 0.5, -1.0], [0.3, 1.0, 0.5, -3.0], [0.2, 3.0, 0.4, -2.0]])
    assert reassign_environments(scores).tolist() == [1, 2, 0, 0]


def _separate(models, k, features):
    single = UltraGCNModel(models.n_users, models.n_items, features, id_dim=models.id_dim,
                            content_dim=models.content_dim)
    with torch.no_grad():
        single.user_embedding.copy_(models.user_embedding[k])
        single.item_embedding.copy_(models.item_embedding[k])
        single.projection.weight.copy_(models.weight[k])
        single.projection.bias.copy_(models.bias[k])
    return single


def test_batched_environment_models_equal_separate_models():
    g = torch.Generator().manual_seed(0)
    features = torch.rand(7, 5, generator=g)
    models = EnvironmentModels(3, 6, 7, features, id_dim=3, content_dim=2, init_std=0.3, generator=g)
    with torch.no_grad():
        models.bias.normal_(0, 0.3, generator=g)
    users = torch.randint(0, 6, (20,), generator=g)
    items = torch.randint(0, 7, (20,), generator=g)
    env = torch.randint(0, 3, (20,), generator=g)
    negatives = torch.randint(0, 7, (3, 4), generator=g)
    mask = torch.rand(5, generator=g)
    beta_u, beta_i = degree_weights(torch.bincount(users, minlength=6).float(),
                                    torch.bincount(items, minlength=7).float())
    # scores: every pair under every model
    all_scores = models.score_all(users, items, mask)
    cached = models.score_all(users, items, item_vectors=models.all_item_vectors(mask))
    assert torch.allclose(cached, all_scores, atol=1e-6)
    for k in range(3):
        single = _separate(models, k, features)
        assert torch.allclose(all_scores[k], single(users, items, mask), atol=1e-6)
    # the batched loss and its gradients are the K separate losses' (sum over rows / B)
    loss = models.batch_loss(users, items, env, negatives, beta_u, beta_i, feature_mask=mask)
    loss.backward()
    total = 0.0
    for k in range(3):
        single = _separate(models, k, features)
        rows = env == k
        u, i = users[rows], items[rows]
        pos = single(u, i, mask)
        neg = single.user_vectors(u) @ single.item_vectors(negatives[k], mask).T
        part = ultragcn_loss(pos, neg, beta_u[u], beta_i[i], beta_i[negatives[k]], reduction="sum") / 20
        part.backward()
        total += part.item()
        assert torch.allclose(models.user_embedding.grad[k], single.user_embedding.grad, atol=1e-6)
        assert torch.allclose(models.item_embedding.grad[k], single.item_embedding.grad, atol=1e-6)
        assert torch.allclose(models.weight.grad[k], single.projection.weight.grad, atol=1e-6)
    assert loss.item() == pytest.approx(total, rel=1e-5)


def test_infer_environments_rounds_and_stopping_rule():
    g = torch.Generator().manual_seed(0)
    users = torch.randint(0, 10, (80,), generator=g)
    items = torch.randint(0, 12, (80,), generator=g)
    labels, models, history = infer_environments(
        users, items, 10, 12, torch.rand(12, 4, generator=g), n_envs=3, max_rounds=4, tol=0.0,
        epochs=1, batch_size=32, n_negatives=3, id_dim=2, content_dim=2, generator=g)
    assert labels.shape == (80,) and int(labels.min()) >= 0 and int(labels.max()) < 3
    assert 1 <= len(history) <= 4
    # every round but the last changed more than tol; the last one stopped the loop or hit the cap
    assert all(h["changed"] > 0.0 for h in history[:-1])
    assert history[-1]["changed"] == 0.0 or len(history) == 4
    # the returned labels are the argmax of the final models (one more reassignment is a no-op
    # only if the models did not move, which they did not after the last round)
    with torch.no_grad():
        again = reassign_environments(models.score_all(users, items, None))
    assert torch.equal(again, labels)
    _, _, one = infer_environments(users, items, 10, 12, None, n_envs=2, max_rounds=3, tol=1.0,
                                   epochs=1, batch_size=32, n_negatives=3, id_dim=2, generator=g)
    assert len(one) == 1                               # tol=1: the first round is enough


# ---------------------------------------------------------------- mask objectives
def test_environment_risks_and_per_environment_gradients():
    g = torch.Generator().manual_seed(1)
    features = torch.rand(8, 4, generator=g)
    scorer = UltraGCNModel(5, 8, features, id_dim=2, content_dim=3, init_std=0.3, bias=False, generator=g)
    users = torch.randint(0, 5, (15,), generator=g)
    items = torch.randint(0, 8, (15,), generator=g)
    env = torch.tensor([0, 1] * 7 + [0])
    negatives = torch.randint(0, 8, (2, 3), generator=g)
    mask = torch.rand(4, generator=g)
    beta_u, beta_i = degree_weights(torch.ones(5), torch.ones(8))
    risks, pooled, present, views = environment_risks(scorer, mask, users, items, env, negatives,
                                                      beta_u, beta_i, 2)
    (grads,) = torch.autograd.grad(risks.sum(), views, retain_graph=True)
    per_row = []
    for k in range(2):
        rows = env == k
        u, i = users[rows], items[rows]
        pos = scorer(u, i, mask)
        neg = scorer.user_vectors(u) @ scorer.item_vectors(negatives[k], mask).T
        losses = ultragcn_loss(pos, neg, beta_u[u], beta_i[i], beta_i[negatives[k]], reduction="none")
        per_row.append(losses)
        assert risks[k].item() == pytest.approx(losses.mean().item(), rel=1e-5)
        (w_grad,) = torch.autograd.grad(losses.mean(), scorer.projection.weight)
        assert torch.allclose(grads[k], w_grad, atol=1e-6)
    assert pooled.item() == pytest.approx(torch.cat(per_row).mean().item(), rel=1e-5)
    assert present.tolist() == [True, True]


def test_learn_invariant_mask_fixed_weight_and_records():
    g = torch.Generator().manual_seed(0)
    users = torch.randint(0, 10, (60,), generator=g)
    items = torch.randint(0, 12, (60,), generator=g)
    env = torch.randint(0, 2, (60,), generator=g)
    for penalty in ("invrl", "irmv1", "vrex"):
        gate, scorer, gammas, history = learn_invariant_mask(
            users, items, env, 10, 12, torch.rand(12, 4, generator=g), n_envs=2, epochs=2,
            pareto="fixed", erm_weight=0.25, penalty=penalty, batch_size=16, n_negatives=3,
            id_dim=2, content_dim=2, mask_learning_rate=1e-2, generator=g)
        assert gammas == [0.25] * 8 and len(history) == 2
        assert not torch.equal(gate.mu.detach(), torch.zeros(4))   # the gates moved
    _, _, gammas, _ = learn_invariant_mask(
        users, items, env, 10, 12, torch.rand(12, 4, generator=g), n_envs=2, epochs=1,
        batch_size=16, n_negatives=3, id_dim=2, content_dim=2, generator=g)
    assert len(gammas) == 4 and all(0.0 <= v <= 1.0 for v in gammas)
    with pytest.raises(ValueError, match="pareto must be one of"):
        learn_invariant_mask(users, items, env, 10, 12, torch.rand(12, 4), n_envs=2, pareto="pcgrad")


def _mask_batch(seed=3):
    g = torch.Generator().manual_seed(seed)
    features = torch.rand(8, 4, generator=g)
    scorer = UltraGCNModel(5, 8, features, id_dim=2, content_dim=3, init_std=0.3, bias=False, generator=g)
    gate = StochasticGateMask(4, sigma=0.0)
    with torch.no_grad():
        gate.mu.copy_(torch.rand(4, generator=g) - 0.5)
    users = torch.randint(0, 5, (20,), generator=g)
    items = torch.randint(0, 8, (20,), generator=g)
    env = torch.tensor([0, 1] * 10)
    negatives = torch.randint(0, 8, (2, 3), generator=g)
    beta_u, beta_i = degree_weights(torch.ones(5), torch.ones(8))
    return scorer, gate, (users, items, env, negatives, beta_u, beta_i)


@pytest.mark.parametrize("penalty", ["invrl", "irmv1", "vrex"])
def test_risk_scaled_penalty_pulls_as_hard_as_the_risk(penalty):
    scorer, gate, batch = _mask_batch()
    shared = [gate.mu, scorer.projection.weight]
    raw = MaskObjectives(penalty, 2)
    erm, irm, pen = raw(scorer, gate, *batch, penalty_weight=0.0, mask_l2=0.0)
    risk_grad = flat_gradient(irm, shared).norm()            # weight 0: IRM is the mean risk
    pen_grad = flat_gradient(pen, shared).norm()
    scaled = MaskObjectives(penalty, 2, penalty_scale="risk")
    _, irm_s, pen_s = scaled(scorer, gate, *batch, penalty_weight=3.0, mask_l2=0.0, shared=shared)
    # the rescaled penalty's gradient has the risk's norm, and it is the raw one times a constant
    assert float(flat_gradient(pen_s, shared).norm()) == pytest.approx(float(risk_grad), rel=1e-4)
    assert float(pen_s.detach()) == pytest.approx(float(pen.detach() * risk_grad / pen_grad), rel=1e-4)
    assert float(irm_s.detach()) == pytest.approx(float(irm.detach() + 3.0 * pen_s.detach()), rel=1e-5)
    with pytest.raises(ValueError, match="penalty_scale must be one of"):
        MaskObjectives(penalty, 2, penalty_scale="grad")


def test_normalized_weighting_records_the_gradient_norm_ratio():
    g = torch.Generator().manual_seed(0)
    users = torch.randint(0, 10, (64,), generator=g)
    items = torch.randint(0, 12, (64,), generator=g)
    env = torch.randint(0, 2, (64,), generator=g)
    features = torch.rand(12, 4, generator=g)
    _, _, mgda, _ = learn_invariant_mask(
        users, items, env, 10, 12, features, n_envs=2, epochs=3, penalty="vrex",
        penalty_weight=50.0, batch_size=16, n_negatives=3, id_dim=2, content_dim=2,
        generator=torch.Generator().manual_seed(1))
    _, _, norm, _ = learn_invariant_mask(
        users, items, env, 10, 12, features, n_envs=2, epochs=3, pareto="normalized",
        penalty="vrex", penalty_weight=50.0, batch_size=16, n_negatives=3, id_dim=2,
        content_dim=2, generator=torch.Generator().manual_seed(1))
    assert len(norm) == 12 and all(0.0 < v < 1.0 for v in norm)
    # MGDA's weight jumps between the ends; the normalised weight is an interior ratio of norms
    assert np.std(norm) < np.std(mgda) or np.std(mgda) == 0.0


