"""Training losses of the UltraGCN family and BPR.

Shapes follow one rule everywhere: a batch has ``B`` positive pairs; negative scores are either
``(B, N)`` (``N`` negatives per positive), ``(G, N)`` (one row per group of consecutive positives,
see :func:`invrec.nn.sample_negatives`) or ``(N,)``, read as the same ``N`` values for every
positive (broadcast over the batch). Per-negative weights follow the same rule, so batch-shared
negative *items* (one ``(N,)`` index set, see :func:`invrec.nn.sample_negatives`) give ``(B, N)``
scores and ``(N,)`` degree weights.

Every loss accepts ``reduction`` in {"mean", "sum", "none"}: "none" returns the ``(B,)`` loss of
each positive (with its negatives), "sum" adds them (InvRL's per-batch sum), "mean" divides that
sum by ``B``. Every loss also accepts a per-positive ``sample_weight`` of shape ``(B,)`` (the
interaction weights ``y`` given to ``fit``): each positive's loss, with its negatives, is multiplied
by its weight before the reduction, so a weight of 2 counts the interaction as if it were there
twice. ``sample_weight=None`` and all-ones weights give the same loss, bit for bit.
"""

from __future__ import annotations

import torch
from torch.nn import functional as F

from .item_graph import item_item_neighbors
from .sampling import expand_groups

__all__ = ["degree_weights", "interaction_degree_weights", "ultragcn_loss", "item_item_loss", "item_item_neighbors"]

#: Floor of a user's degree in ``beta_u``; only reached by users without training interactions.
_DEGREE_FLOOR = 1e-10


def _reduce(per_positive, reduction, sample_weight=None):
    if sample_weight is not None:
        if sample_weight.shape != per_positive.shape:
            raise ValueError(f"sample_weight must have shape (B,) = {tuple(per_positive.shape)}, one "
                             f"per positive; got {tuple(sample_weight.shape)}.")
        per_positive = per_positive * sample_weight
    if reduction == "mean":
        return per_positive.mean()
    if reduction == "sum":
        return per_positive.sum()
    if reduction == "none":
        return per_positive
    raise ValueError(f"reduction must be 'mean', 'sum' or 'none'; got {reduction!r}.")


def _as_matrix(values, n_rows, name):
    """Broadcast a (B, N), grouped (G, N) or shared (N,) tensor to (B, N), checking the shape."""
    if values.ndim == 1:
        return values.unsqueeze(0).expand(n_rows, -1)
    if values.ndim == 2 and values.shape[0] == 1:
        return values.expand(n_rows, -1)
    if values.ndim == 2 and 1 <= values.shape[0] <= n_rows:
        return expand_groups(values, n_rows)
    raise ValueError(
        f"{name} must have shape (B={n_rows}, N), (G<=B, N) or (N,); got {tuple(values.shape)}.")


def degree_weights(user_degree, item_degree, *, dtype=None):
    """UltraGCN's constraint coefficients from training degrees.

    ``beta_u = sqrt(d_u + 1) / d_u`` and ``beta_i = 1 / sqrt(d_i + 1)``. A zero user degree is
    floored at 1e-10 (as UltraGCN and InvRL do), which makes ``beta_u`` huge but finite; such users
    have no positive pair, so they never appear in a training batch.

    Parameters
    ----------
    user_degree : array-like or Tensor of shape (n_users,)
        Number of training interactions of each user.
    item_degree : array-like or Tensor of shape (n_items,)
        Number of training interactions of each item.
    dtype : torch.dtype, default=None
        Output type; None uses torch's default floating type. Computed in float64 first.

    Returns
    -------
    beta_u : Tensor of shape (n_users,)
    beta_i : Tensor of shape (n_items,)
        On the device of the inputs (CPU for arrays).

    Examples
    --------
    >>> bu, bi = degree_weights([3, 8], [0, 3])
    >>> bu.tolist(), bi.tolist()
    ([0.6666666865348816, 0.375], [1.0, 0.5])
    """
    dtype = torch.get_default_dtype() if dtype is None else dtype
    du = torch.as_tensor(user_degree).to(torch.float64)
    di = torch.as_tensor(item_degree).to(torch.float64)
    beta_u = torch.sqrt(du + 1.0) / du.clamp_min(_DEGREE_FLOOR)
    beta_i = 1.0 / torch.sqrt(di + 1.0)
    return beta_u.to(dtype), beta_i.to(dtype)


def interaction_degree_weights(users, items, n_users, n_items, user_degree=None, item_degree=None):
    """:func:`degree_weights` of the degrees in the interactions ``(users, items)``, or of the
    degrees given (the training set's, when these are a subset of it)."""
    if user_degree is None:
        user_degree = torch.bincount(users, minlength=n_users).float()
    if item_degree is None:
        item_degree = torch.bincount(items, minlength=n_items).float()
    return degree_weights(user_degree, item_degree)


def ultragcn_loss(pos_scores, neg_scores, beta_u, beta_pos, beta_neg, *, w=(1.0, 1.0, 1.0, 1.0),
                  sample_weight=None, reduction="mean"):
    """UltraGCN's degree-weighted binary cross-entropy (its L_O and L_C folded together).

    For a positive pair (u, i) with negatives j_1..j_N::

        loss(u, i) = (w1 + w2 beta_u beta_i) softplus(-s_ui)
                     + mean_n (w3 + w4 beta_u beta_jn) softplus(s_ujn)

    ``softplus(-s) = BCE(sigmoid(s), 1)`` and ``softplus(s) = BCE(sigmoid(s), 0)``, written this way
    for numerical stability.

    Parameters
    ----------
    pos_scores : Tensor of shape (B,)
        Scores of the positive pairs.
    neg_scores : Tensor of shape (B, N) or (N,)
        Scores of the negatives of each positive; 1-D means the same scores for every positive.
    beta_u : Tensor of shape (B,)
        ``beta`` of each positive's user (see :func:`degree_weights`).
    beta_pos : Tensor of shape (B,)
        ``beta`` of each positive item.
    beta_neg : Tensor of shape (B, N) or (N,)
        ``beta`` of each negative item; 1-D for batch-shared negative items.
    w : tuple of 4 floats, default=(1, 1, 1, 1)
        ``(w1, w2, w3, w4)``.
    sample_weight : Tensor of shape (B,), default=None
        Weight of each positive (its interaction weight): ``loss(u, i)`` is multiplied by it before
        the reduction. None weighs every positive 1.
    reduction : {"mean", "sum", "none"}, default="mean"
        "sum" is InvRL's per-batch loss; "mean" divides it by ``B`` (not by the sum of the
        weights: give weights of mean 1 to keep the loss's scale).

    Returns
    -------
    Tensor
        Scalar, or shape (B,) with ``reduction="none"``.

    Examples
    --------
    >>> import torch
    >>> one = torch.ones(1)
    >>> loss = ultragcn_loss(torch.zeros(1), torch.zeros(1, 2), one, one, torch.ones(2))
    >>> round(loss.item() / float(torch.log(torch.tensor(2.0))), 6)  # (1+1) ln2 + (1+1) ln2
    4.0
    """
    if pos_scores.ndim != 1:
        raise ValueError(f"pos_scores must be 1-D (B,); got shape {tuple(pos_scores.shape)}.")
    w1, w2, w3, w4 = (float(v) for v in w)
    n_pos = pos_scores.shape[0]
    neg_scores = _as_matrix(neg_scores, n_pos, "neg_scores")
    beta_neg = _as_matrix(beta_neg, n_pos, "beta_neg")
    pos_weight = w1 + w2 * (beta_u * beta_pos)
    neg_weight = w3 + w4 * (beta_u.unsqueeze(1) * beta_neg)
    pos_term = pos_weight * F.softplus(-pos_scores)
    neg_term = (neg_weight * F.softplus(neg_scores)).mean(dim=1)
    return _reduce(pos_term + neg_term, reduction, sample_weight)


def item_item_loss(user_vectors, neighbor_item_vectors, weights, *, sample_weight=None, reduction="mean"):
    """UltraGCN's item-item constraint L_I on the neighbours of each positive item.

    ``loss(u, i) = -sum_k omega_ik log sigmoid(u . h_{n_k(i)})``, where ``n_k(i)`` and
    ``omega_ik`` come from :func:`item_item_neighbors`: the user is pulled towards the items most
    co-consumed with its positive item.

    Parameters
    ----------
    user_vectors : Tensor of shape (B, D)
        Vectors of the users of the positive pairs.
    neighbor_item_vectors : Tensor of shape (B, K, D)
        Vectors of the ``K`` neighbours of each positive item.
    weights : Tensor of shape (B, K)
        Their weights (zero at padding).
    sample_weight : Tensor of shape (B,), default=None
        Weight of each positive (its interaction weight), applied after the sum over neighbours.
    reduction : {"mean", "sum", "none"}, default="mean"
        Over positives, after the sum over neighbours.

    Returns
    -------
    Tensor
        Scalar, or shape (B,) with ``reduction="none"``.
    """
    scores = torch.bmm(neighbor_item_vectors, user_vectors.unsqueeze(2)).squeeze(2)
    per_positive = -(weights * F.logsigmoid(scores)).sum(dim=1)
    return _reduce(per_positive, reduction, sample_weight)
