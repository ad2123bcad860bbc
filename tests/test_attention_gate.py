"""AttentionFusion's gate (variant part rescaled to the invariant part's scale) and its prior."""

import math

import pytest
import torch
from hypothesis import given, settings, strategies as st

from invrec.invariance import AttentionFusion

FAST = settings(max_examples=30, deadline=None)


def gen(seed=0):
    return torch.Generator().manual_seed(seed)


def test_gated_fixed_fusion_hand_computed():
    # z_inv = (3, 4): rms = sqrt(12.5); z_var = (1, 0): rms = sqrt(0.5); ratio 5.
    # fused = 0.5 * (3, 4) + 0.5 * 5 * (1, 0) = (4, 2).
    out = AttentionFusion(2, mode="fixed", gate=True)(torch.tensor([[3.0, 4.0]]), torch.tensor([[1.0, 0.0]]))
    torch.testing.assert_close(out.fused, torch.tensor([[4.0, 2.0]]), rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(out.weights, torch.tensor([[0.5, 0.5]]))
    ungated = AttentionFusion(2, mode="fixed")(torch.tensor([[3.0, 4.0]]), torch.tensor([[1.0, 0.0]]))
    torch.testing.assert_close(ungated.fused, torch.tensor([[2.0, 2.0]]))


@FAST
@given(mode=st.sampled_from(["attention", "global", "fixed"]), self_attention=st.booleans(),
       seed=st.integers(0, 2**31 - 1), factor=st.floats(1.0, 1e3))
def test_gate_makes_the_fusion_blind_to_the_variant_scale(mode, self_attention, seed, factor):
    """A bigger variant projection cannot buy a bigger share of the fused vector.

    (Up to the 1e-8 added to mean squares; hence float64 and growing factors, the case that matters.)
    """
    g = gen(seed)
    fusion = AttentionFusion(4, mode=mode, self_attention=self_attention, gate=True, generator=g).double()
    with torch.no_grad():
        for p in fusion.parameters():
            p.copy_(torch.randn(p.shape, generator=g))
    z_inv = torch.randn(5, 4, generator=g, dtype=torch.float64)
    z_var = torch.randn(5, 4, generator=g, dtype=torch.float64)
    a, b = fusion(z_inv, z_var), fusion(z_inv, z_var * factor)
    torch.testing.assert_close(a.weights, b.weights, rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(a.fused, b.fused, rtol=1e-5, atol=1e-6)
    if not self_attention or mode != "attention":
        # the variant contribution is exactly a_var times the invariant part's scale
        variant_part = a.fused - a.weights[:, :1] * z_inv
        rms = variant_part.square().mean(-1).sqrt()
        expected = a.weights[:, 1] * z_inv.square().mean(-1).sqrt()
        torch.testing.assert_close(rms, expected, rtol=1e-5, atol=1e-6)


def test_gate_leaves_single_part_ablations_alone():
    z_inv, z_var = torch.randn(3, 2, generator=gen(1)), torch.randn(3, 2, generator=gen(2)) * 7
    torch.testing.assert_close(AttentionFusion(2, mode="variant", gate=True)(z_inv, z_var).fused, z_var)
    torch.testing.assert_close(AttentionFusion(2, mode="invariant", gate=True)(z_inv, z_var).fused, z_inv)


@pytest.mark.parametrize("mode", ["attention", "global"])
@pytest.mark.parametrize("prior", [0.5, 0.8, 0.05])
def test_learned_weights_start_at_the_prior(mode, prior):
    fusion = AttentionFusion(3, mode=mode, prior=prior, generator=gen())
    w = fusion.weights(torch.randn(4, 3, generator=gen(1)), torch.randn(4, 3, generator=gen(2)))
    torch.testing.assert_close(w, torch.tensor([[prior, 1 - prior]]).expand(4, 2))
    if mode == "global":   # the start is a parameter: training can move it
        assert fusion.logits.requires_grad
        assert math.isclose((fusion.logits[0] - fusion.logits[1]).item(), math.log(prior / (1 - prior)),
                            rel_tol=1e-5, abs_tol=1e-6)


@pytest.mark.parametrize("prior", [0.0, 1.0, -0.2, 2])
def test_prior_outside_the_open_interval_is_refused(prior):
    with pytest.raises(ValueError, match="prior"):
        AttentionFusion(3, prior=prior)


def test_repr_names_every_non_default_option():
    from invrec.invariance import AttentionFusion

    text = repr(AttentionFusion(4, context_dim=3))
    assert "context_dim=3" in text and "gate" not in text and "prior" not in text
    text = repr(AttentionFusion(4, mode="global", gate=True, prior=0.8))
    assert "gate=True" in text and "prior=0.8" in text
