"""Scores of one training batch: its positive pairs and their negatives (the hot path of an epoch).

Item vectors are computed once for the distinct items the batch touches (its positives and
negatives), never for the whole catalog, and reused through an index. Batch-shared negatives are
scored by one matrix product; grouped negatives (one draw per group of consecutive positives) by one
batched product ``(G, B/G, D) @ (G, D, N)``, of which per-positive negatives are the case ``G = B``
(cheaper than a dense ``(B, n_distinct)`` product followed by a gather).
"""

from __future__ import annotations

import torch

__all__ = ["pair_and_negative_scores", "gather_item_vectors"]


def _distinct(items, n_items):
    """Sorted distinct values of ``items`` and the position of each value among them.

    A marker array over the catalog replaces :func:`torch.unique` (a sort): ``O(n_items + len)``
    and about 70x faster on a CPU batch of 400k indices.
    """
    present = torch.zeros(n_items, dtype=torch.long, device=items.device)
    present.index_fill_(0, items, 1)
    distinct = present.nonzero().squeeze(1)
    rank = torch.cumsum(present, 0).sub_(1)
    return distinct, rank.index_select(0, items)


def pair_and_negative_scores(scorer, users, pos_items, neg_items, mask=None):
    """Scores of the positive pairs of a batch and of their negative items.

    Parameters
    ----------
    scorer : UltraGCNModel
        Any module with ``user_vectors(users)``, ``item_vectors(items, mask)`` and ``n_items``.
    users, pos_items : LongTensor of shape (B,)
        The positive pairs.
    neg_items : LongTensor of shape (N,), (G, N) or (B, N)
        Batch-shared negatives (scored by one ``(B, D) @ (D, N)`` product), negatives shared by
        groups of consecutive positives (positive ``b`` uses row ``b // ceil(B / G)``), or
        per-positive ones.
    mask : Tensor of shape (d,), default=None
        Feature mask passed to ``item_vectors``.

    Returns
    -------
    pos_scores : Tensor of shape (B,)
    neg_scores : Tensor of shape (B, N)
        Score of each positive's user with each of its negatives (with every shared negative).

    Examples
    --------
    >>> import torch
    >>> from invrec.nn import UltraGCNModel
    >>> scorer = UltraGCNModel(4, 6, torch.rand(6, 3), id_dim=2, content_dim=2,
    ...                         generator=torch.Generator().manual_seed(0))
    >>> pos, neg = pair_and_negative_scores(scorer, torch.tensor([0, 3]), torch.tensor([1, 1]),
    ...                                     torch.tensor([2, 5, 0]))
    >>> pos.shape, neg.shape
    (torch.Size([2]), torch.Size([2, 3]))
    >>> torch.allclose(pos, scorer(torch.tensor([0, 3]), torch.tensor([1, 1])))
    True
    """
    n_pos = pos_items.shape[0]
    if neg_items.ndim not in (1, 2) or (neg_items.ndim == 2 and not 1 <= neg_items.shape[0] <= n_pos):
        raise ValueError(
            f"neg_items must have shape (N,), (G<=B, N) or (B={n_pos}, N); got "
            f"{tuple(neg_items.shape)}.")
    u = scorer.user_vectors(users)
    wanted = torch.cat([pos_items, neg_items.reshape(-1)])
    distinct, where = _distinct(wanted, scorer.n_items)
    h = scorer.item_vectors(distinct, mask)
    pos_scores = (u * h.index_select(0, where[:n_pos])).sum(dim=1)
    h_neg = h.index_select(0, where[n_pos:])
    if neg_items.ndim == 1:
        return pos_scores, u @ h_neg.T
    n_groups, n_neg = neg_items.shape
    per_group = -(-n_pos // n_groups)
    h_neg = h_neg.view(n_groups, n_neg, -1)
    if per_group * n_groups != n_pos:            # pad the last group with zero users
        u = torch.cat([u, u.new_zeros(per_group * n_groups - n_pos, u.shape[1])])
    neg_scores = torch.bmm(u.view(n_groups, per_group, -1), h_neg.transpose(1, 2))
    return pos_scores, neg_scores.reshape(n_groups * per_group, n_neg)[:n_pos]


def gather_item_vectors(scorer, items, mask=None):
    """Item vectors of an index tensor of any shape, each distinct item computed once.

    For long index lists with repeats (the neighbours of a batch's positives, for example) this
    projects ``n_distinct`` content rows instead of ``items.numel()``.

    Parameters
    ----------
    scorer : UltraGCNModel
        Any module with ``item_vectors(items, mask)`` and ``n_items``.
    items : LongTensor of any shape
    mask : Tensor of shape (d,), default=None
        Feature mask passed to ``item_vectors``.

    Returns
    -------
    Tensor of shape items.shape + (dim,)
    """
    distinct, where = _distinct(items.reshape(-1), scorer.n_items)
    h = scorer.item_vectors(distinct, mask)
    return h.index_select(0, where).view(*items.shape, -1)
