"""MILK's nn parts: Dirichlet draws, cyclic-mixup environments, cross-modality alignment and the
content-only scorer."""

import math

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from torch.nn import functional as F

from invrec.multimodal import MultimodalContentModel, cross_modality_alignment, cyclic_mixtures, sample_cyclic_mixtures, sample_dirichlet


# ---------------------------------------------------------------------- Dirichlet
@pytest.mark.parametrize("alpha", [0.1, 1.0, 5.0])
@pytest.mark.parametrize("m", [2, 3])
def test_dirichlet_moments_match_theory(alpha, m):
    draws = sample_dirichlet(40_000, m, alpha, generator=torch.Generator().manual_seed(1),
                             dtype=torch.float64)
    assert draws.shape == (40_000, m)
    assert (draws >= 0).all() and torch.allclose(draws.sum(1), torch.ones(40_000, dtype=torch.float64))
    a0 = alpha * m
    expected_var = alpha * (a0 - alpha) / (a0 ** 2 * (a0 + 1))     # Var of one component
    np.testing.assert_allclose(draws.mean(0).numpy(), 1.0 / m, atol=0.01)
    np.testing.assert_allclose(draws.var(0).numpy(), expected_var, rtol=0.05)


def test_dirichlet_tiny_alpha_is_finite_and_near_one_hot():
    draws = sample_dirichlet(2_000, 3, 1e-3, generator=torch.Generator().manual_seed(0))
    assert torch.isfinite(draws).all()
    assert torch.allclose(draws.sum(1), torch.ones(2_000))
    assert (draws.max(1).values > 0.99).float().mean() > 0.95


def test_dirichlet_is_reproducible_and_checks_arguments():
    a = sample_dirichlet(5, 2, 0.1, generator=torch.Generator().manual_seed(3))
    b = sample_dirichlet(5, 2, 0.1, generator=torch.Generator().manual_seed(3))
    assert torch.equal(a, b)
    with pytest.raises(ValueError, match="at least 2 modalities"):
        sample_dirichlet(1, 1, 0.1)
    with pytest.raises(ValueError, match="alpha"):
        sample_dirichlet(1, 2, 0.0)


# ---------------------------------------------------------------------- cyclic mixup
def test_cyclic_environments_hand_values():
    env = cyclic_mixtures(torch.tensor([0.6, 0.3, 0.1]))
    expected = torch.tensor([[1 / 3, 1 / 3, 1 / 3], [0.6, 0.3, 0.1], [0.1, 0.6, 0.3], [0.3, 0.1, 0.6]])
    assert torch.allclose(env, expected)
    assert torch.allclose(cyclic_mixtures(torch.tensor([0.8, 0.2]), include_uniform=False),
                          torch.tensor([[0.8, 0.2], [0.2, 0.8]]))


@settings(max_examples=60, deadline=None)
@given(m=st.integers(2, 6), alpha=st.sampled_from([0.01, 0.1, 1.0, 10.0]), seed=st.integers(0, 2**31 - 1))
def test_cyclic_mixup_properties(m, alpha, seed):
    env = sample_cyclic_mixtures(m, alpha, generator=torch.Generator().manual_seed(seed))
    assert env.shape == (m + 1, m)
    # every environment is a weighting: non-negative, sums to 1
    assert (env >= 0).all()
    assert torch.allclose(env.sum(1), torch.ones(m + 1), atol=1e-6)
    # the uniform environment is always present, first
    assert torch.allclose(env[0], torch.full((m,), 1.0 / m))
    shifted = env[1:]
    # the shifted environments are the cyclic shifts of one draw
    for k in range(m):
        assert torch.equal(shifted[k], torch.roll(shifted[0], k))
    # each modality carries the largest weight in exactly one shifted environment
    theta = shifted[0]
    top = int(theta.argmax())
    dominant = [(top + k) % m for k in range(m)]      # where the draw's largest weight lands
    assert sorted(dominant) == list(range(m))
    for k in range(m):
        assert shifted[k, dominant[k]] == shifted[k].max()


def test_environments_are_resampled_each_call():
    g = torch.Generator().manual_seed(0)
    first, second = (sample_cyclic_mixtures(2, 0.1, generator=g) for _ in range(2))
    assert torch.equal(first[0], second[0]) and not torch.equal(first[1:], second[1:])


# ---------------------------------------------------------------------- alignment
def test_alignment_two_modalities_is_mse():
    g = torch.Generator().manual_seed(0)
    reps = torch.randn(7, 2, 5, generator=g)
    assert torch.allclose(cross_modality_alignment(reps), F.mse_loss(reps[:, 0], reps[:, 1]))


def test_alignment_hand_values_three_modalities_with_missing():
    reps = torch.tensor([
        [[0.0, 0.0], [1.0, 1.0], [2.0, 0.0]],      # all three available
        [[1.0, 2.0], [5.0, 5.0], [1.0, 0.0]],      # modality 1 missing
        [[3.0, 3.0], [0.0, 0.0], [9.0, 9.0]],      # only modality 0: no pair
    ])
    avail = torch.tensor([[True, True, True], [True, False, True], [True, False, False]])
    # item 0: pairs (0,1) 2, (0,2) 4, (1,2) 1+1=2; item 1: pair (0,2) 0+4=4 -> 12 over 4 pairs x 2 dims
    assert math.isclose(float(cross_modality_alignment(reps, avail)), 12 / 8)
    # without the mask every pair of every item counts: item 1 adds (0,1) 16+9 and (1,2) 16+25,
    # item 2 adds 18 + 72 + 162
    assert math.isclose(float(cross_modality_alignment(reps)), (8 + 4 + 25 + 41 + 18 + 72 + 162) / 18,
                        rel_tol=1e-6)


def test_alignment_without_any_pair_is_zero_and_differentiable():
    reps = torch.randn(3, 2, 4, requires_grad=True)
    loss = cross_modality_alignment(reps, torch.tensor([[True, False]] * 3))
    loss.backward()
    assert float(loss.detach()) == 0.0 and torch.equal(reps.grad, torch.zeros_like(reps))
    with pytest.raises(ValueError, match="availability"):
        cross_modality_alignment(reps, torch.ones(3, 3, dtype=torch.bool))
    with pytest.raises(ValueError, match="M >= 2"):
        cross_modality_alignment(torch.zeros(3, 1, 4))


# ---------------------------------------------------------------------- content scorer
@pytest.fixture
def scorer():
    g = torch.Generator().manual_seed(0)
    features = torch.rand(6, 5, generator=g)
    return MultimodalContentModel(4, features, [slice(0, 3), slice(3, 5)], dim=3, generator=g)


def test_scorer_modality_vectors_are_linear_extractors(scorer):
    c = scorer.modality_vectors()
    x = scorer.features
    for m, (layer, cols) in enumerate(zip(scorer.extractors, (slice(0, 3), slice(3, 5)))):
        assert torch.allclose(c[:, m], x[:, cols] @ layer.weight.T + layer.bias)
    assert torch.allclose(scorer.item_vectors(), c.mean(1))
    w = torch.tensor([[0.2, 0.8], [1.0, 0.0]])
    fused = scorer.fuse(c, w)
    assert fused.shape == (2, 6, 3)
    assert torch.allclose(fused[0], 0.2 * c[:, 0] + 0.8 * c[:, 1]) and torch.allclose(fused[1], c[:, 0])


def test_scorer_paths_agree(scorer):
    users = torch.tensor([0, 3, 1])
    full = scorer.score_users(users)
    items = torch.tensor([5, 0, 2])
    assert torch.allclose(scorer(users, items), full[torch.arange(3), items])
    # a new item given by its content scores like the catalog item with the same content
    assert torch.allclose(scorer.score_new_items(users, scorer.features[[4, 1]]), full[:, [4, 1]])
    distinct, vectors, where = scorer.batch_modality_vectors(torch.tensor([[4, 1], [4, 4]]))
    assert distinct.tolist() == [1, 4] and where.tolist() == [[1, 0], [1, 1]]
    assert torch.allclose(vectors, scorer.modality_vectors(distinct))


def test_scorer_initialisation_follows_the_generator():
    features = torch.rand(6, 5)
    a = MultimodalContentModel(4, features, dim=3, generator=torch.Generator().manual_seed(7))
    b = MultimodalContentModel(4, features, dim=3, generator=torch.Generator().manual_seed(7))
    for p, q in zip(a.parameters(), b.parameters()):
        assert torch.equal(p, q)
    assert a.n_modalities == 1


def test_scorer_id_fallback_without_content():
    scorer = MultimodalContentModel(3, None, n_items=5, dim=2)
    assert not scorer.has_content and scorer.n_modalities == 1
    assert scorer.modality_vectors(torch.tensor([1, 2])).shape == (2, 1, 2)
    assert scorer.score_users(torch.tensor([0])).shape == (1, 5)
    with pytest.raises(ValueError, match="no content"):
        scorer.extract(torch.zeros(1, 4))
    with pytest.raises(ValueError, match="n_items"):
        MultimodalContentModel(3, None)
    with pytest.raises(ValueError, match="slices"):
        MultimodalContentModel(3, torch.zeros(4, 5), [slice(0, 2)])


# ---------------------------------------------------------------------- missing-modality environments
def test_missing_masks_rate_and_independence():
    from invrec.multimodal.mixup import sample_missing_masks
    masks = sample_missing_masks(3, 20_000, 0.25, generator=torch.Generator().manual_seed(0))
    assert masks.shape == (3, 20_000) and masks.dtype == torch.bool
    np.testing.assert_allclose(masks.float().mean(1).numpy(), 0.25, atol=0.01)
    both = (masks[0] & masks[1]).float().mean().item()              # independent rows: 1/16
    assert abs(both - 0.0625) < 0.006
    with pytest.raises(ValueError, match="rate"):
        sample_missing_masks(2, 5, 1.5)


@settings(max_examples=40, deadline=None)
@given(st.integers(2, 4), st.integers(1, 5), st.integers(0, 10_000))
def test_missing_environment_scores_equal_fusing_the_filled_representations(m, n, seed):
    """Score in environment e == dot product with the mean of the representations after
    replacing modality e of the masked items by the fill."""
    from invrec.multimodal.mixup import missing_modality_scores
    g = torch.Generator().manual_seed(seed)
    u = torch.randn(n, 3, generator=g, dtype=torch.float64)
    c = torch.randn(n, m, 3, generator=g, dtype=torch.float64)     # one item per user
    fill = torch.randn(m, 3, generator=g, dtype=torch.float64)
    masks = torch.rand(n, m, generator=g) < 0.5
    got = missing_modality_scores(torch.einsum("nd,nmd->nm", u, c), u @ fill.T, masks)
    for e in range(m):
        reps = c.clone()
        reps[masks[:, e], e] = fill[e]
        torch.testing.assert_close(got[:, e], (u * reps.mean(1)).sum(1))
