"""Cyclic-mixup modality mixtures (the "heterogeneous environments" of the MILK paper; invrec
keeps the word environment for a partition of the interactions).

A *mixture* is a weighting ``theta`` of the ``M`` modalities (non-negative, summing to 1): an
item's representation in that mixture is ``sum_m theta_m c^m``. MILK draws ``M + 1`` of them at
every training step:

* mixture 0 weighs every modality ``1 / M`` (the fusion used at inference, always present);
* mixture 1 is one draw ``theta ~ Dirichlet(alpha, ..., alpha)``;
* mixtures 2..M are its cyclic shifts ``roll(theta, k)``, ``k = 1..M-1``.

So every mixture sums to 1, and each modality carries the largest weight of exactly one of the
shifted mixtures (the one where the draw's largest weight lands on it). A small ``alpha`` gives
near one-hot mixtures; a large one weights every mixture almost uniformly.

Draws take an explicit :class:`torch.Generator` (nothing touches global seeds). Gamma variates are
drawn by Marsaglia and Tsang's method in log space, so ``alpha`` as small as 1e-3 gives finite
weights (the smallest of them may be exactly 0 in float32).
"""

from __future__ import annotations

import math
import numbers

import torch
from .._moved import moved_names

__all__ = ["sample_dirichlet", "cyclic_mixtures", "sample_cyclic_mixtures",
           "sample_missing_masks", "missing_modality_scores"]

#: Candidates drawn per gamma variate; each is accepted with probability >= 0.95, so all of them
#: are rejected with probability below 1e-20.
_GAMMA_TRIES = 16


def _log_gamma_variates(shape, concentration, generator, device):
    """``log X`` for ``X ~ Gamma(concentration, 1)`` of the given shape, in float64.

    Marsaglia & Tsang (2000) for shape ``a + 1 >= 1``, then ``X_a = X_{a+1} U^(1/a)`` (their
    boosting trick), taken in logs so that tiny ``a`` does not underflow.
    """
    a = float(concentration)
    b = a + 1.0 if a < 1.0 else a
    d = b - 1.0 / 3.0
    c = 1.0 / math.sqrt(9.0 * d)
    tries = (_GAMMA_TRIES, *shape)
    x = torch.randn(tries, generator=generator, device=device, dtype=torch.float64)
    u = torch.rand(tries, generator=generator, device=device, dtype=torch.float64)
    v = (1.0 + c * x) ** 3
    safe_v = v.clamp_min(1e-300)
    accept = (v > 0) & (torch.log(u) < 0.5 * x * x + d - d * safe_v + d * torch.log(safe_v))
    first = accept.to(torch.int8).argmax(dim=0, keepdim=True)       # first accepted candidate
    log_x = (math.log(d) + torch.log(safe_v)).gather(0, first).squeeze(0)
    log_x = torch.where(accept.any(dim=0), log_x, torch.full_like(log_x, math.log(d)))
    if a < 1.0:
        boost = torch.rand(shape, generator=generator, device=device, dtype=torch.float64)
        log_x = log_x + torch.log(boost.clamp_min(1e-300)) / a
    return log_x


def sample_dirichlet(n_samples, n_modalities, alpha, *, generator=None, device=None,
                     dtype=torch.float32):
    """Draws from the symmetric Dirichlet distribution ``Dirichlet(alpha * 1_M)``.

    Parameters
    ----------
    n_samples : int
        Number of draws.
    n_modalities : int
        ``M``, the length of each draw (at least 2).
    alpha : float
        Concentration of every component, > 0.
    generator : torch.Generator, default=None
        Source of randomness (None uses torch's default generator).
    device : torch.device or str, default=None
        Device of the result; None means the generator's device (the CPU without a generator).
    dtype : torch.dtype, default=torch.float32
        Type of the result (the draw itself is done in float64).

    Returns
    -------
    Tensor of shape (n_samples, n_modalities)
        Non-negative rows summing to 1.

    Examples
    --------
    >>> import torch
    >>> w = sample_dirichlet(4, 3, 0.1, generator=torch.Generator().manual_seed(0))
    >>> w.shape, bool(torch.allclose(w.sum(1), torch.ones(4)))
    (torch.Size([4, 3]), True)
    """
    n_modalities = _check_modalities(n_modalities)
    if isinstance(alpha, bool) or not isinstance(alpha, numbers.Real) or not alpha > 0 or not math.isfinite(alpha):
        raise ValueError(f"alpha must be a positive finite float; got {alpha!r}.")
    draw_device = generator.device if generator is not None else torch.device(device or "cpu")
    log_x = _log_gamma_variates((int(n_samples), n_modalities), alpha, generator, draw_device)
    weights = torch.softmax(log_x, dim=1).to(dtype)
    return weights if device is None else weights.to(device)


def cyclic_mixtures(theta, *, include_uniform=True):
    """Mixture weights from one draw: uniform, ``theta`` and its cyclic shifts.

    Parameters
    ----------
    theta : Tensor of shape (M,)
        One modality weighting (for example a Dirichlet draw).
    include_uniform : bool, default=True
        Put the uniform weighting ``1 / M`` first (MILK's mixture 0).

    Returns
    -------
    Tensor of shape (M + 1, M), or (M, M) without the uniform row
        Row ``k + 1`` (row ``k`` without the uniform row) is ``roll(theta, k)``: the weight of
        modality ``m`` there is ``theta[(m - k) % M]``.

    Examples
    --------
    >>> import torch
    >>> cyclic_mixtures(torch.tensor([0.7, 0.2, 0.1])).tolist()  # doctest: +NORMALIZE_WHITESPACE
    [[0.3333333432674408, 0.3333333432674408, 0.3333333432674408],
     [0.699999988079071, 0.20000000298023224, 0.10000000149011612],
     [0.10000000149011612, 0.699999988079071, 0.20000000298023224],
     [0.20000000298023224, 0.10000000149011612, 0.699999988079071]]
    """
    if theta.ndim != 1 or theta.shape[0] < 2:
        raise ValueError(f"theta must be 1-D with at least 2 modalities; got shape {tuple(theta.shape)}.")
    m = theta.shape[0]
    shifts = torch.arange(m, device=theta.device)
    index = (torch.arange(m, device=theta.device).unsqueeze(0) - shifts.unsqueeze(1)) % m
    rows = theta[index]                                   # row k = roll(theta, k)
    if not include_uniform:
        return rows
    return torch.cat([theta.new_full((1, m), 1.0 / m), rows])


def sample_cyclic_mixtures(n_modalities, alpha, *, include_uniform=True, generator=None,
                               device=None, dtype=torch.float32):
    """A fresh set of MILK mixtures: uniform, a Dirichlet draw and its cyclic shifts.

    Parameters
    ----------
    n_modalities : int
        ``M`` (at least 2).
    alpha : float
        Dirichlet concentration (MILK: 0.1; smaller gives more extreme mixtures).
    include_uniform : bool, default=True
        Include the uniform mixture first.
    generator : torch.Generator, default=None
    device : torch.device or str, default=None
    dtype : torch.dtype, default=torch.float32

    Returns
    -------
    Tensor of shape (M + 1, M)
        Every row sums to 1 (see :func:`cyclic_mixtures`).

    Examples
    --------
    >>> import torch
    >>> env = sample_cyclic_mixtures(2, 0.1, generator=torch.Generator().manual_seed(0))
    >>> env.shape, env[0].tolist(), bool(torch.allclose(env[1], env[2].flip(0)))
    (torch.Size([3, 2]), [0.5, 0.5], True)
    """
    theta = sample_dirichlet(1, n_modalities, alpha, generator=generator, device=device,
                             dtype=dtype)[0]
    return cyclic_mixtures(theta, include_uniform=include_uniform)


def sample_missing_masks(n_modalities, n_items, rate, *, generator=None, device=None):
    """Which items lose which modality in the missing-modality mixtures.

    Missing-modality mixture ``m`` replaces modality ``m`` of a random share ``rate`` of the
    batch's items by its fill (what a test item without that modality gets), each item drawn
    independently, so items with and without the modality compete in one ranking, as they do
    under FTMT.

    Parameters
    ----------
    n_modalities : int
        ``M``, the number of mixtures (one per modality).
    n_items : int
        Number of (distinct) items of the batch.
    rate : float
        Probability in [0, 1] that an item loses the modality of a mixture.
    generator : torch.Generator, default=None
    device : torch.device or str, default=None
        Device of the result; None means the generator's device (the CPU without a generator).

    Returns
    -------
    BoolTensor of shape (n_modalities, n_items)
        Row ``m``: the items whose modality ``m`` is replaced in mixture ``m``.

    Examples
    --------
    >>> import torch
    >>> sample_missing_masks(2, 3, 1.0).tolist()
    [[True, True, True], [True, True, True]]
    >>> sample_missing_masks(2, 3, 0.0).tolist()
    [[False, False, False], [False, False, False]]
    """
    rate = float(rate)
    if not 0.0 <= rate <= 1.0:
        raise ValueError(f"rate must be in [0, 1]; got {rate!r}.")
    draw_device = generator.device if generator is not None else torch.device(device or "cpu")
    masks = torch.rand((int(n_modalities), int(n_items)), generator=generator, device=draw_device) < rate
    return masks if device is None else masks.to(device)


def missing_modality_scores(modality_scores, fill_scores, masks):
    """Uniformly fused scores in each missing-modality mixture.

    With uniform fusion a score is ``mean_m s_m`` where ``s_m = u . c^m``; in mixture ``m`` an
    item whose mask is set has ``s_m`` replaced by the fill's score ``f_m = u . G_m(fill_m)``::

        score_e = mean_k s_k + mask_e * (f_e - s_e) / M

    Parameters
    ----------
    modality_scores : Tensor of shape (..., M)
        Per-modality scores ``s`` of the (user, item) pairs.
    fill_scores : Tensor broadcastable to ``modality_scores``
        Scores ``f`` of each modality's fill for the pair's user.
    masks : Tensor broadcastable to ``modality_scores``
        Entry ``[..., e]``: whether the pair's item loses modality ``e`` in mixture ``e``.

    Returns
    -------
    Tensor of the shape of ``modality_scores``
        Entry ``[..., e]``: the pair's score in mixture ``e``.

    Examples
    --------
    >>> import torch
    >>> s, f = torch.tensor([[4.0, 2.0]]), torch.tensor([[0.0, 1.0]])
    >>> missing_modality_scores(s, f, torch.tensor([[True, True]])).tolist()   # 3 - 2, 3 - 0.5
    [[1.0, 2.5]]
    >>> missing_modality_scores(s, f, torch.tensor([[False, True]])).tolist()
    [[3.0, 2.5]]
    """
    m = modality_scores.shape[-1]
    fused = modality_scores.mean(dim=-1, keepdim=True)
    return fused + masks.to(modality_scores.dtype) * (fill_scores - modality_scores) / m


def _check_modalities(n_modalities):
    if isinstance(n_modalities, bool) or int(n_modalities) != n_modalities or n_modalities < 2:
        raise ValueError(
            f"cyclic-mixup mixtures need at least 2 modalities; got {n_modalities!r}.")
    return int(n_modalities)


#: Former names of this module's parts.
__getattr__ = moved_names(__name__, {
    "cyclic_environments": "invrec.multimodal.mixup:cyclic_mixtures",
    "sample_cyclic_environments": "invrec.multimodal.mixup:sample_cyclic_mixtures",
    "missing_environment_scores": "invrec.multimodal.mixup:missing_modality_scores",
})
