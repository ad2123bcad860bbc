"""Fusion of an item's invariant and variant content representations.

:class:`Fusion` is the setting an estimator holds (its ``fusion`` parameter, searchable as
``fusion__gate``); :class:`AttentionFusion` is the torch module it builds.

PaInvRL's convert module and EIOR represent an item's content twice: an invariant part
``z_inv = W_inv (m * x)`` and a variant part ``z_var = W_var ((1 - m) * x)``. This module turns the
two into one content vector ``f = a_inv * z~_inv + a_var * z~_var`` with weights ``a`` that sum to
1, and exposes the weights so that an estimator can report them (``attention_weights_``).

Modes (``mode=``):

``"attention"``
    The two parts (optionally with a user-context token ``P c_u``) form a short token sequence
    ``T``; single-head scaled dot-product self-attention mixes them with a residual connection,
    ``T~ = T + softmax(N(T) W_Q (N(T) W_K)^T / sqrt(d)) T W_V``; additive attention pooling scores
    the two item tokens, ``s_k = w^T tanh(W_p N(t~_k) + b_p)``, and ``(a_inv, a_var) = softmax(s)``
    (one pair per item, or per (user, item) pair with a context token). ``self_attention=False``
    skips the first step (``T~ = T``): that is PaInvRL's attention-weighted sum. ``N`` scales each
    token to unit root-mean-square (``normalize=True``, the default) or is the identity.
``"global"``
    One learned pair for every item, ``softmax(theta)`` with ``theta`` in R^2 (the minimal option,
    closest to the EIOR authors' two scalars, but bounded).
``"fixed"``, ``"invariant"``, ``"variant"``
    Ablations without parameters: ``(0.5, 0.5)``, ``(1, 0)`` (InvRL's final model) and ``(0, 1)``
    (ERM on the variant part).

Why ``N``: the weights should follow the *direction* of the representations, not their scale.
UltraGCN-style content vectors start near 1e-2 (``init_std=0.01``); unnormalised, every score
above is then close to 0 for every item, the weights stay flat at (0.5, 0.5) and hardly receive
gradient. On MovieLens-100K (``benchmarks/ratings.py``, 3 seeds) the per-item invariant weights
had a standard deviation over items of 0.004, 0.002 and 0.22 after training without ``N``, and
0.23, 0.05 and 0.06 with it. Only the scores are normalised; the values mixed and fused keep the
tokens' own scale.

Gate (``gate=True``): a weight alone only scales the variant vector, whose norm its projection
is free to grow back. Rescaling each row's variant part to the invariant part's root-mean-square
before fusing makes the weight a gate: the variant part then enters with exactly
``a_var / a_inv`` of the invariant part's scale whatever its projection's norm (EIOR's default;
``benchmarks/README.md``, "EIOR").

The pooling vector ``w`` and ``theta`` start at zero (with ``prior=0.5``), so every learned mode starts from the weights
``(0.5, 0.5)`` exactly; how far they move in training is then a diagnostic. The weights learn from
whatever loss the fused vector enters; EIOR trains them on its fused loss only (a weighted sum of
losses with free weights is degenerate: the weights collapse to zero).
"""

from __future__ import annotations

import math
import numbers
from typing import NamedTuple

import torch
from sklearn.base import BaseEstimator
from torch import nn

from ..nn.init import normal_linear_
from ..utils.params import Interval, StrOptions, validate_parameters

__all__ = ["AttentionFusion", "Fusion", "FusionOutput", "FUSION_MODES"]

#: Accepted values of ``AttentionFusion(mode=...)``.
FUSION_MODES = ("attention", "global", "fixed", "invariant", "variant")

#: Added to the mean square of a token before the square root of ``N``: keeps the gradient of a
#: token that is exactly zero (a variant part under an all-ones mask) bounded by 1e4.
_RMS_EPS = 1e-8

#: Weights of the parameter-free modes, (invariant, variant).
_CONSTANT_WEIGHTS = {"fixed": (0.5, 0.5), "invariant": (1.0, 0.0), "variant": (0.0, 1.0)}


class FusionOutput(NamedTuple):
    """Result of :meth:`AttentionFusion.forward`.

    Attributes
    ----------
    fused : Tensor of shape batch_shape + (dim,)
        The fused content vector.
    weights : Tensor of shape batch_shape + (2,)
        ``(a_inv, a_var)`` of each row: non-negative, summing to 1.
    """

    fused: torch.Tensor
    weights: torch.Tensor


def _rms(rows):
    """Root-mean-square over the last axis, kept as a (..., 1) column (``_RMS_EPS`` inside)."""
    return torch.sqrt(rows.square().mean(dim=-1, keepdim=True) + _RMS_EPS)


class AttentionFusion(nn.Module):
    """Fuse invariant and variant item representations with weights that sum to 1.

    Parameters
    ----------
    dim : int
        Width ``d`` of the two representations (and of the fused vector).
    mode : {"attention", "global", "fixed", "invariant", "variant"}, default="attention"
        How the weights are obtained (see the module docstring). "attention" is the EIOR design
        (spec ``eior.md`` section 3.3, step 2); "global" its minimal option; the last three are
        the ablations of the EIOR issue.
    self_attention : bool, default=True
        In "attention" mode, mix the tokens by single-head self-attention before pooling
        (EIOR); False pools the two representations directly (PaInvRL's weighted sum).
    context_dim : int, default=None
        Width of a user-context vector to add as a third token through a linear map
        ``P: R^context_dim -> R^d`` ("attention" mode only). The weights then depend on the user:
        pass ``context`` to :meth:`forward`. None means no context token (weights per item).
    gate : bool, default=False
        Make the weights a gate: before fusing, rescale each row's variant representation to the
        root-mean-square of its invariant one, ``z~_var = z_var * rms(z_inv) / rms(z_var)``
        (modes "attention", "global" and "fixed"). The variant part then enters the fused vector
        with exactly ``a_var / a_inv`` of the invariant part's scale: its projection cannot grow to
        undo a small weight. False fuses the representations as they are.
    prior : float in (0, 1), default=0.5
        Invariant weight at initialisation of the learned modes: the pooling scores get the
        constant offset ``(log prior, log(1 - prior))`` ("attention") or ``theta`` starts there
        ("global"), so that the weights start at exactly ``(prior, 1 - prior)`` and training moves
        them from there. 0.5 is no offset.
    normalize : bool, default=True
        In "attention" mode, compute the attention and pooling scores from tokens scaled to unit
        root-mean-square (see the module docstring); False uses the raw tokens (the formulas of
        the specs verbatim).
    attention_dim : int, default=None
        Width of the pooling layer ``W_p``; None means ``dim``.
    init_std : float, default=None
        Standard deviation of the normal initial values of ``W_Q, W_K, W_V, W_p, P``; None means
        ``1 / sqrt(dim)`` (unit-scale outputs for unit-scale inputs). ``w`` and ``theta`` start at 0.
    generator : torch.Generator, default=None
        Source of the initial values (None: torch's default generator).

    Attributes
    ----------
    query, key, value : Linear(d, d, bias=False) or None
        Self-attention maps (present in "attention" mode with ``self_attention=True``).
    pool : Linear(d, attention_dim) or None
        ``W_p, b_p`` of the pooling scores ("attention" mode).
    pool_vector : Parameter of shape (attention_dim,) or None
        ``w`` ("attention" mode), initialised at 0.
    context : Linear(context_dim, d, bias=False) or None
        ``P``, with a context token.
    logits : Parameter of shape (2,) or None
        ``theta`` ("global" mode), initialised at 0.

    Examples
    --------
    >>> import torch
    >>> fusion = AttentionFusion(4, generator=torch.Generator().manual_seed(0))
    >>> out = fusion(torch.randn(5, 4), torch.randn(5, 4))
    >>> out.fused.shape, out.weights.shape
    (torch.Size([5, 4]), torch.Size([5, 2]))
    >>> out.weights.sum(dim=-1).tolist()           # (0.5, 0.5) until trained
    [1.0, 1.0, 1.0, 1.0, 1.0]
    >>> AttentionFusion(4, mode="invariant")(torch.ones(1, 4), torch.zeros(1, 4)).weights.tolist()
    [[1.0, 0.0]]
    """

    def __init__(self, dim, *, mode="attention", self_attention=True, normalize=True, gate=False,
                 prior=0.5, context_dim=None, attention_dim=None, init_std=None, generator=None):
        super().__init__()
        if mode not in FUSION_MODES:
            raise ValueError(f"mode must be one of {list(FUSION_MODES)}; got {mode!r}.")
        dim = int(dim)
        if dim < 1:
            raise ValueError(f"dim must be a positive int; got {dim}.")
        if context_dim is not None and mode != "attention":
            raise ValueError(
                f"a user-context token needs mode='attention'; got mode={mode!r} with "
                f"context_dim={context_dim}. Drop context_dim or use mode='attention'.")
        if context_dim is not None and int(context_dim) < 1:
            raise ValueError(f"context_dim must be a positive int or None; got {context_dim}.")
        attention_dim = dim if attention_dim is None else int(attention_dim)
        if attention_dim < 1:
            raise ValueError(f"attention_dim must be a positive int or None; got {attention_dim}.")
        prior = float(prior)
        if not 0.0 < prior < 1.0:
            raise ValueError(f"prior must be a float strictly between 0 and 1; got {prior}.")
        std = 1.0 / math.sqrt(dim) if init_std is None else float(init_std)
        self.dim, self.mode, self.self_attention = dim, mode, bool(self_attention)
        self.normalize, self.gate, self.prior = bool(normalize), bool(gate), prior
        self.context_dim = None if context_dim is None else int(context_dim)
        self.query = self.key = self.value = self.pool = self.context = None
        self.pool_vector = self.logits = None
        device = generator.device if generator is not None else None
        offset = torch.tensor([math.log(prior), math.log1p(-prior)], device=device)
        offset = offset - offset.mean()      # zero at prior 0.5
        if mode == "attention":
            self.register_buffer("offset", offset)
            if self.self_attention:
                self.query = nn.Linear(dim, dim, bias=False, device=device)
                self.key = nn.Linear(dim, dim, bias=False, device=device)
                self.value = nn.Linear(dim, dim, bias=False, device=device)
            self.pool = nn.Linear(dim, attention_dim, device=device)
            self.pool_vector = nn.Parameter(torch.zeros(attention_dim, device=device))
            if self.context_dim is not None:
                self.context = nn.Linear(self.context_dim, dim, bias=False, device=device)
            for layer in (self.query, self.key, self.value, self.pool, self.context):
                if layer is not None:
                    normal_linear_(layer, std, generator)
        elif mode == "global":
            self.logits = nn.Parameter(offset)

    @property
    def learned(self):
        """Whether the weights have parameters (modes "attention" and "global")."""
        return self.mode in ("attention", "global")

    def _check_inputs(self, invariant, variant, context):
        if invariant.shape != variant.shape or invariant.shape[-1:] != (self.dim,):
            raise ValueError(
                f"invariant and variant must have the same shape (..., dim={self.dim}); got "
                f"{tuple(invariant.shape)} and {tuple(variant.shape)}.")
        if self.context is None and context is not None:
            raise ValueError("context was given but the module has no context token; build it "
                             "with context_dim=... (mode='attention') or pass context=None.")
        if self.context is not None:
            if context is None:
                raise ValueError(f"the module has a context token (context_dim="
                                 f"{self.context_dim}); pass context of shape (..., "
                                 f"{self.context_dim}).")
            if context.shape[-1:] != (self.context_dim,):
                raise ValueError(f"context must have shape (..., {self.context_dim}); got "
                                 f"{tuple(context.shape)}.")

    def _tokens(self, invariant, variant, context):
        """Token sequence (..., L, d): the two item parts, then the projected context if any."""
        parts = [invariant, variant]
        if context is not None:
            parts.append(self.context(context))
        parts = torch.broadcast_tensors(*parts)
        return torch.stack(parts, dim=-2)

    def _scale(self, tokens):
        """``N``: each token divided by its root-mean-square (identity when not normalising)."""
        if not self.normalize:
            return tokens
        return tokens * torch.rsqrt(tokens.square().mean(dim=-1, keepdim=True) + _RMS_EPS)

    def _attend(self, tokens):
        """Residual single-head scaled dot-product self-attention over the token axis."""
        if not self.self_attention:
            return tokens
        scaled = self._scale(tokens)
        q, k, v = self.query(scaled), self.key(scaled), self.value(tokens)
        scores = q @ k.transpose(-1, -2) / math.sqrt(self.dim)
        return tokens + torch.softmax(scores, dim=-1) @ v

    def forward(self, invariant, variant, context=None):
        """Fuse the two representations.

        Parameters
        ----------
        invariant, variant : Tensor of shape batch_shape + (dim,)
            ``z_inv`` and ``z_var`` of each row (an item, or a (user, item) pair).
        context : Tensor of shape (..., context_dim), default=None
            User context, broadcastable against the item rows (for example ``(B, 1, c)`` against
            ``(1, N, d)`` items); required exactly when the module has a context token.

        Returns
        -------
        FusionOutput
            ``fused`` (the broadcast batch shape + (dim,)) and ``weights`` (+ (2,)).
        """
        self._check_inputs(invariant, variant, context)
        if self.gate and self.mode not in ("invariant", "variant"):
            variant = variant * (_rms(invariant) / _rms(variant))
        if self.mode in _CONSTANT_WEIGHTS:
            w_inv, w_var = _CONSTANT_WEIGHTS[self.mode]
            fused = {"invariant": invariant, "variant": variant}.get(self.mode)
            if fused is None:
                fused = w_inv * invariant + w_var * variant
            weights = invariant.new_tensor([w_inv, w_var]).expand(*invariant.shape[:-1], 2)
            return FusionOutput(fused, weights)
        if self.mode == "global":
            weights = torch.softmax(self.logits, dim=0).expand(*invariant.shape[:-1], 2)
            fused = weights[..., :1] * invariant + weights[..., 1:] * variant
            return FusionOutput(fused, weights)
        attended = self._attend(self._tokens(invariant, variant, context))[..., :2, :]
        scores = torch.tanh(self.pool(self._scale(attended))) @ self.pool_vector + self.offset
        weights = torch.softmax(scores, dim=-1)
        fused = (weights.unsqueeze(-1) * attended).sum(dim=-2)
        return FusionOutput(fused, weights)

    def weights(self, invariant, variant, context=None):
        """The weights ``(a_inv, a_var)`` alone, shape batch_shape + (2,); see :meth:`forward`."""
        return self.forward(invariant, variant, context).weights

    def extra_repr(self):
        extra = f"dim={self.dim}, mode={self.mode!r}"
        if self.mode == "attention":
            extra += f", self_attention={self.self_attention}, normalize={self.normalize}"
            if self.context_dim is not None:
                extra += f", context_dim={self.context_dim}"
        if self.gate:
            extra += ", gate=True"
        if self.learned and self.prior != 0.5:
            extra += f", prior={self.prior}"
        return extra



class Fusion(BaseEstimator):
    """How a fused item model weighs its invariant and variant content: the estimators' setting.

    PaInvRL and EIOR hold one as their ``fusion`` parameter (a str there is the ``mode``, with
    the other settings at the method's defaults) and build an :class:`AttentionFusion` from it.
    PaInvRL's default is ``Fusion()``, the paper's attention-weighted sum; EIOR's is
    ``Fusion(gate=True)``.

    Parameters
    ----------
    mode : {"attention", "global", "fixed", "invariant", "variant"}, default="attention"
        Learned per-item attention (PaInvRL's convert module, EIOR's fusion), one learned global
        pair, or the ablations 0.5/0.5, invariant only (InvRL's final model), variant only (ERM).
    self_attention : bool, default=False
        Mix the two tokens by self-attention before pooling (the EIOR spec, 3.3 step 2); False
        pools them directly (PaInvRL's weighted sum). From ``benchmarks/eior.py regimes``: with
        self-attention the residual mixing writes variant content into the invariant token and the
        weights moved *away* from the invariant part when the training environments disagreed;
        without it they moved towards it (``docs/eior_plan.md``, "Results").
    gate : bool, default=False
        Rescale each item's variant part to its invariant part's root-mean-square before fusing, so
        a weight is a gate its projection cannot undo by growing (modes "attention", "global",
        "fixed"; see :class:`AttentionFusion`). EIOR's default (its invariant part is trained by
        its own IRM loss); with PaInvRL's pooled loss the gate keeps the spurious part in: on the
        synthetic shift (``benchmarks/invariance.py``, 5 seeds) PaInvRL's defaults reached OOD
        NDCG@20 0.74x the ERM baseline gated and 1.00x without.
    prior : float in (0, 1), default=0.5
        Invariant weight at initialisation of the learned modes (0.5: no preference).

    Examples
    --------
    >>> import torch
    >>> fusion = Fusion("global").build(4, generator=torch.Generator().manual_seed(0))
    >>> fusion
    AttentionFusion(dim=4, mode='global')
    """

    _parameter_constraints = {
        "mode": [StrOptions(set(FUSION_MODES))],
        "self_attention": ["boolean"],
        "gate": ["boolean"],
        "prior": [Interval(numbers.Real, 0, 1, closed="neither")],
    }

    def __init__(self, mode="attention", *, self_attention=False, gate=False, prior=0.5):
        self.mode = mode
        self.self_attention = self_attention
        self.gate = gate
        self.prior = prior

    @classmethod
    def from_spelling(cls, mode):
        """The fusion an estimator's ``fusion="<mode>"`` stands for."""
        return cls(mode=mode)

    def build(self, dim, *, generator=None):
        """The :class:`AttentionFusion` of width ``dim`` this setting describes."""
        validate_parameters(self)
        return AttentionFusion(dim, mode=self.mode, self_attention=bool(self.self_attention),
                               gate=bool(self.gate), prior=float(self.prior), generator=generator)
