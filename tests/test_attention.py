"""Tests of invrec.invariance.fusion: the fusion of invariant and variant item representations."""

import math

import pytest
import torch
from hypothesis import assume, given, settings, strategies as st

from invrec.invariance import AttentionFusion
from invrec.invariance.fusion import FUSION_MODES

FAST = settings(max_examples=40, deadline=None)


def gen(seed=0):
    return torch.Generator().manual_seed(seed)


def _set(layer, value):
    with torch.no_grad():
        layer.copy_(torch.as_tensor(value, dtype=layer.dtype).expand(layer.shape))


# ------------------------------------------------------------------------ weights are a distribution

@FAST
@given(mode=st.sampled_from(FUSION_MODES), dim=st.integers(1, 6), n=st.integers(1, 7),
       seed=st.integers(0, 2**31 - 1), scale=st.floats(0.01, 50.0),
       self_attention=st.booleans(), context=st.booleans())
def test_weights_are_a_distribution_for_every_row(mode, dim, n, seed, scale, self_attention,
                                                  context):
    context = context and mode == "attention"
    g = gen(seed)
    fusion = AttentionFusion(dim, mode=mode, self_attention=self_attention,
                             context_dim=3 if context else None, generator=g)
    # push the learned parameters away from their zero start so the weights are not (0.5, 0.5)
    with torch.no_grad():
        for p in fusion.parameters():
            p.copy_(torch.randn(p.shape, generator=g) * 3)
    z_inv = torch.randn(n, dim, generator=g) * scale
    z_var = torch.randn(n, dim, generator=g) * scale
    ctx = torch.randn(n, 3, generator=g) * scale if context else None
    out = fusion(z_inv, z_var, ctx)
    assert out.weights.shape == (n, 2) and out.fused.shape == (n, dim)
    assert torch.all(out.weights >= 0) and torch.all(torch.isfinite(out.fused))
    torch.testing.assert_close(out.weights.sum(dim=-1), torch.ones(n))


def test_learned_modes_start_at_one_half():
    z_inv, z_var = torch.randn(4, 3, generator=gen(1)), torch.randn(4, 3, generator=gen(2))
    for mode in ("attention", "global"):
        w = AttentionFusion(3, mode=mode, generator=gen()).weights(z_inv, z_var)
        torch.testing.assert_close(w, torch.full((4, 2), 0.5))


def test_context_broadcasts_users_against_items():
    fusion = AttentionFusion(4, context_dim=5, generator=gen())
    with torch.no_grad():
        fusion.pool_vector.normal_(generator=gen(3))
    items_inv, items_var = torch.randn(1, 6, 4), torch.randn(1, 6, 4)
    users = torch.randn(3, 1, 5)
    out = fusion(items_inv, items_var, users)
    assert out.fused.shape == (3, 6, 4) and out.weights.shape == (3, 6, 2)
    # the weights depend on the user: two users, same item, different weights
    assert not torch.allclose(out.weights[0], out.weights[1])
    # and equal the per-pair computation
    single = fusion(items_inv[0, 2:3], items_var[0, 2:3], users[1, :, :])
    torch.testing.assert_close(single.weights[0], out.weights[1, 2])


# ----------------------------------------------------------------------------- hand-computed values

def test_attention_hand_computed_one_dimensional_case_unnormalised():
    # d = 1, W_Q = W_K = W_V = 1, W_p = 1, b_p = 0, w = 1; z_inv = 1, z_var = 0.
    fusion = AttentionFusion(1, normalize=False, generator=gen())
    for layer in (fusion.query.weight, fusion.key.weight, fusion.value.weight,
                  fusion.pool.weight, fusion.pool_vector):
        _set(layer, 1.0)
    _set(fusion.pool.bias, 0.0)
    out = fusion(torch.tensor([[1.0]]), torch.tensor([[0.0]]))
    # scores Q K^T / sqrt(1) = [[1, 0], [0, 0]]; row softmax: [e/(1+e), 1/(1+e)] and [1/2, 1/2]
    # attended (residual) = [1 + e/(1+e) * 1, 0 + 1/2 * 1]
    t_inv = 1.0 + math.e / (1.0 + math.e)
    t_var = 0.5
    a_inv = 1.0 / (1.0 + math.exp(math.tanh(t_var) - math.tanh(t_inv)))
    torch.testing.assert_close(out.weights, torch.tensor([[a_inv, 1.0 - a_inv]]))
    torch.testing.assert_close(out.fused, torch.tensor([[a_inv * t_inv + (1 - a_inv) * t_var]]))
    assert abs(a_inv - 0.6170) < 1e-3  # the figure worked out by hand


def test_attention_hand_computed_two_dimensional_case_normalised():
    # d = 2, W_Q = W_K = W_V = W_p = I, b_p = 0, w = (1, 0); z_inv = (1, 0), z_var = (0, 1).
    fusion = AttentionFusion(2, generator=gen())
    for layer in (fusion.query.weight, fusion.key.weight, fusion.value.weight, fusion.pool.weight):
        _set(layer, torch.eye(2))
    _set(fusion.pool.bias, 0.0)
    _set(fusion.pool_vector, [1.0, 0.0])
    out = fusion(torch.tensor([[1.0, 0.0]]), torch.tensor([[0.0, 1.0]]))
    # unit-RMS tokens (sqrt2, 0), (0, sqrt2): Q K^T / sqrt2 = diag(sqrt2); rows softmax to
    # (p, 1-p) and (1-p, p) with p = sigmoid(sqrt2); values are the raw tokens, so with the
    # residual t_inv = (1+p, 1-p), t_var = (1-p, 1+p).
    p = 1.0 / (1.0 + math.exp(-math.sqrt(2.0)))
    t_inv, t_var = torch.tensor([1 + p, 1 - p]), torch.tensor([1 - p, 1 + p])
    # pooling on unit-RMS attended tokens: first coordinate of t / sqrt(((1+p)^2 + (1-p)^2) / 2)
    rms = math.sqrt(1.0 + p * p)
    s_inv, s_var = math.tanh((1 + p) / rms), math.tanh((1 - p) / rms)
    a_inv = 1.0 / (1.0 + math.exp(s_var - s_inv))
    torch.testing.assert_close(out.weights, torch.tensor([[a_inv, 1.0 - a_inv]]))
    torch.testing.assert_close(out.fused, (a_inv * t_inv + (1 - a_inv) * t_var).unsqueeze(0))
    assert abs(p - 0.8044) < 1e-4 and abs(a_inv - 0.6760) < 1e-3   # the figures worked out by hand


@FAST
@given(seed=st.integers(0, 2**31 - 1), scale=st.floats(1e-2, 1e3),
       self_attention=st.booleans())
def test_normalised_weights_do_not_depend_on_the_scale_of_the_parts(seed, scale, self_attention):
    g = gen(seed)
    fusion = AttentionFusion(4, self_attention=self_attention, generator=g)
    with torch.no_grad():
        fusion.pool_vector.normal_(generator=g)
    z_inv, z_var = torch.randn(6, 4, generator=g), torch.randn(6, 4, generator=g)
    # The scale is free as long as the epsilon inside N is negligible: a token whose scaled mean
    # square comes near it (1e-8) is normalised less (seed 63114570, scale 1/64: 0.002 apart).
    smallest = min(z_inv.square().mean(1).min(), z_var.square().mean(1).min()) * scale ** 2
    assume(smallest > 1e-5)
    torch.testing.assert_close(fusion.weights(scale * z_inv, scale * z_var),
                               fusion.weights(z_inv, z_var), atol=1e-3, rtol=1e-3)


def test_pooling_without_self_attention_is_painvrl_weighted_sum():
    fusion = AttentionFusion(2, self_attention=False, normalize=False, generator=gen())
    _set(fusion.pool.weight, torch.eye(2))
    _set(fusion.pool.bias, 0.0)
    _set(fusion.pool_vector, [1.0, -1.0])
    z_inv, z_var = torch.tensor([[2.0, 0.0]]), torch.tensor([[0.0, 1.0]])
    out = fusion(z_inv, z_var)
    s_inv, s_var = math.tanh(2.0), -math.tanh(1.0)
    a_inv = 1.0 / (1.0 + math.exp(s_var - s_inv))
    torch.testing.assert_close(out.weights, torch.tensor([[a_inv, 1 - a_inv]]))
    torch.testing.assert_close(out.fused, a_inv * z_inv + (1 - a_inv) * z_var)


def test_global_mode_is_softmax_of_two_logits():
    fusion = AttentionFusion(3, mode="global")
    _set(fusion.logits, [math.log(3.0), 0.0])           # softmax = (3/4, 1/4)
    z_inv, z_var = torch.ones(2, 3), torch.full((2, 3), 5.0)
    out = fusion(z_inv, z_var)
    torch.testing.assert_close(out.weights, torch.tensor([[0.75, 0.25]] * 2))
    torch.testing.assert_close(out.fused, torch.full((2, 3), 0.75 + 1.25))


# ------------------------------------------------------------------------------------- ablations

@pytest.mark.parametrize("mode, expected", [("fixed", (0.5, 0.5)), ("invariant", (1.0, 0.0)),
                                            ("variant", (0.0, 1.0))])
def test_ablation_modes_do_what_they_say(mode, expected):
    fusion = AttentionFusion(3, mode=mode)
    assert list(fusion.parameters()) == [] and not fusion.learned
    z_inv, z_var = torch.randn(4, 3, generator=gen(1)), torch.randn(4, 3, generator=gen(2))
    out = fusion(z_inv, z_var)
    torch.testing.assert_close(out.weights, torch.tensor([expected] * 4))
    torch.testing.assert_close(out.fused, expected[0] * z_inv + expected[1] * z_var)
    if mode == "invariant":
        assert out.fused is z_inv        # InvRL's final model: the variant part is not even read


# ------------------------------------------------------------------------------------- gradients

def _grads(fusion, z_inv, z_var, ctx=None):
    fusion.zero_grad()
    out = fusion(z_inv, z_var, ctx)
    (out.fused.square().sum() + out.fused.sum()).backward()
    return {name: p.grad for name, p in fusion.named_parameters()}


def test_gradients_reach_every_attention_parameter_and_the_inputs():
    fusion = AttentionFusion(3, context_dim=2, generator=gen())
    with torch.no_grad():
        fusion.pool_vector.normal_(generator=gen(5))     # off zero, so the weights are not flat
    z_inv = torch.randn(5, 3, generator=gen(1), requires_grad=True)
    z_var = torch.randn(5, 3, generator=gen(2), requires_grad=True)
    ctx = torch.randn(5, 2, generator=gen(3), requires_grad=True)
    grads = _grads(fusion, z_inv, z_var, ctx)
    assert set(grads) == {"query.weight", "key.weight", "value.weight", "pool.weight",
                          "pool.bias", "pool_vector", "context.weight"}
    for name, g in grads.items():
        assert g is not None and g.abs().sum() > 0, name
    for tensor in (z_inv, z_var, ctx):
        assert tensor.grad is not None and tensor.grad.abs().sum() > 0


def test_pool_vector_gets_gradient_from_its_zero_start():
    # at initialisation the weights are exactly (0.5, 0.5); the loss must still move them
    fusion = AttentionFusion(3, generator=gen())
    z_inv, z_var = torch.randn(5, 3, generator=gen(1)), torch.randn(5, 3, generator=gen(2))
    grads = _grads(fusion, z_inv, z_var)
    assert grads["pool_vector"].abs().sum() > 0


def test_global_mode_gradient_only_on_its_logits_and_it_learns():
    fusion = AttentionFusion(2, mode="global")
    assert [n for n, _ in fusion.named_parameters()] == ["logits"]
    # target = the invariant part: gradient descent on the fused loss moves weight to it
    z_inv, z_var = torch.tensor([[1.0, 2.0]]), torch.tensor([[-1.0, 0.5]])
    opt = torch.optim.SGD(fusion.parameters(), lr=0.5)
    for _ in range(200):
        opt.zero_grad()
        (fusion(z_inv, z_var).fused - z_inv).square().sum().backward()
        opt.step()
    assert fusion.weights(z_inv, z_var)[0, 0] > 0.95


def test_attention_learns_per_item_weights():
    # items 0-3 want their invariant part, items 4-7 their variant part
    g = gen(7)
    fusion = AttentionFusion(4, self_attention=False, attention_dim=16, generator=g)
    z_inv, z_var = torch.randn(8, 4, generator=g), torch.randn(8, 4, generator=g)
    target = torch.cat([z_inv[:4], z_var[4:]])
    opt = torch.optim.Adam(fusion.parameters(), lr=0.05)
    for _ in range(300):
        opt.zero_grad()
        (fusion(z_inv, z_var).fused - target).square().sum().backward()
        opt.step()
    w = fusion.weights(z_inv, z_var)[:, 0]
    assert torch.all(w[:4] > 0.8) and torch.all(w[4:] < 0.2)


# ----------------------------------------------------------------------------------- validation

def test_errors_name_the_problem():
    with pytest.raises(ValueError, match="mode must be one of"):
        AttentionFusion(3, mode="concat")
    with pytest.raises(ValueError, match="context token needs mode='attention'"):
        AttentionFusion(3, mode="global", context_dim=2)
    with pytest.raises(ValueError, match="dim must be a positive int"):
        AttentionFusion(0)
    fusion = AttentionFusion(3)
    with pytest.raises(ValueError, match="same shape"):
        fusion(torch.ones(2, 3), torch.ones(2, 4))
    with pytest.raises(ValueError, match="no context token"):
        fusion(torch.ones(2, 3), torch.ones(2, 3), torch.ones(2, 2))
    with pytest.raises(ValueError, match="pass context"):
        AttentionFusion(3, context_dim=2)(torch.ones(2, 3), torch.ones(2, 3))


def test_same_generator_same_initial_values_and_repr():
    a = AttentionFusion(4, generator=gen(3))
    b = AttentionFusion(4, generator=gen(3))
    for (na, pa), (nb, pb) in zip(a.named_parameters(), b.named_parameters()):
        assert na == nb and torch.equal(pa, pb)
    assert "mode='attention'" in repr(a)
