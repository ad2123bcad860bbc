"""Top-k selection on score matrices: the one ranking kernel every invrec model uses.

Scores of a chunk of users against the whole catalog form a dense ``(n_users, n_items)`` tensor on
the model's device; excluded items (a user's training items) and non-candidates are set to
``-inf`` and :func:`torch.topk` picks the best ``k``. Rows with fewer than ``k`` eligible items are
padded with ``-1``. Nothing loops over users in Python: the caller walks over user *chunks*.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import scipy.sparse as sp
import torch

__all__ = ["top_k", "chunked_top_k", "rankings_to_frame"]


def top_k(scores, k, *, exclude=None, candidates=None):
    """Best ``k`` items per row of a score matrix.

    Parameters
    ----------
    scores : Tensor or ndarray of shape (n_users, n_items)
        Higher is better. Not modified.
    k : int
        Length of each ranked list (capped at ``n_items``).
    exclude : sparse matrix of shape (n_users, n_items), default=None
        Non-zero entries are never ranked (for example each user's training items).
    candidates : array-like of bool of shape (n_items,), default=None
        When given, only items marked True are ranked.

    Returns
    -------
    items : ndarray of int64 of shape (n_users, min(k, n_items))
        Column indices in rank order, ``-1`` where a row ran out of eligible items.
    values : ndarray of float of shape (n_users, min(k, n_items))
        Their scores, ``-inf`` at the padding.
    """
    if isinstance(scores, np.ndarray) and not scores.flags.writeable:
        scores = np.array(scores)
    scores = torch.as_tensor(scores)
    if scores.ndim != 2:
        raise ValueError(f"scores must be 2-D (n_users, n_items); got shape {tuple(scores.shape)}.")
    n_users, n_items = scores.shape
    k = int(min(k, n_items))
    if k <= 0 or n_users == 0:
        return np.empty((n_users, 0), np.int64), np.empty((n_users, 0), np.float64)
    masked = scores.to(torch.float32 if not scores.is_floating_point() else scores.dtype).clone()
    if candidates is not None:
        cand = torch.as_tensor(np.asarray(candidates, dtype=bool), device=masked.device)
        masked[:, ~cand] = -torch.inf
    if exclude is not None:
        exclude = sp.coo_array(exclude)
        if exclude.shape != (n_users, n_items):
            raise ValueError(f"exclude has shape {exclude.shape}; expected {(n_users, n_items)}.")
        if exclude.nnz:
            rows = torch.as_tensor(exclude.row.astype(np.int64), device=masked.device)
            cols = torch.as_tensor(exclude.col.astype(np.int64), device=masked.device)
            masked[rows, cols] = -torch.inf
    values, items = torch.topk(masked, k, dim=1)
    items = torch.where(torch.isneginf(values), torch.full_like(items, -1), items)
    return items.cpu().numpy().astype(np.int64), values.detach().cpu().double().numpy()


def chunked_top_k(score_fn, users, k, *, exclude=None, candidates=None, chunk_size=1024):
    """:func:`top_k` over many users, scoring ``chunk_size`` users at a time.

    Parameters
    ----------
    score_fn : callable
        ``score_fn(user_indices)`` returns the ``(len(user_indices), n_items)`` score tensor of those
        users (on any device).
    users : array-like of int
        Encoded user indices to rank for.
    k : int
        Length of each ranked list.
    exclude : sparse matrix of shape (n_all_users, n_items), default=None
        Items never ranked for each user, indexed by encoded user (rows are picked per chunk).
    candidates : array-like of bool of shape (n_items,), default=None
        Items eligible for ranking.
    chunk_size : int, default=1024
        Users scored at once; bounds memory at ``chunk_size * n_items`` scores.

    Returns
    -------
    items, values : ndarray
        As in :func:`top_k`, one row per entry of ``users``.
    """
    users = np.asarray(users, dtype=np.int64)
    exclude = None if exclude is None else sp.csr_array(exclude)
    out_items, out_values = [], []
    for start in range(0, len(users), chunk_size):
        chunk = users[start:start + chunk_size]
        with torch.no_grad():
            scores = score_fn(chunk)
        ex = None if exclude is None else exclude[chunk]
        items, values = top_k(scores, k, exclude=ex, candidates=candidates)
        out_items.append(items)
        out_values.append(values)
    if not out_items:
        return np.empty((0, 0), np.int64), np.empty((0, 0), np.float64)
    return np.concatenate(out_items), np.concatenate(out_values)


def rankings_to_frame(users, items, scores, *, item_ids=None):
    """Long recommendation table from the output of :func:`top_k`.

    Parameters
    ----------
    users : array-like of shape (n_users,)
        Raw id of each row of ``items``.
    items : ndarray of int of shape (n_users, k)
        Column indices in rank order, ``-1`` at padding (dropped).
    scores : ndarray of shape (n_users, k)
        Their scores.
    item_ids : array-like, default=None
        Raw id of each column index; None keeps the indices.

    Returns
    -------
    DataFrame
        Columns ``user``, ``item``, ``score``, ``rank`` (1-based), users in the given order.
    """
    users = np.asarray(users)
    keep = items >= 0
    rows, ranks = np.nonzero(keep)
    picked = items[keep]
    return pd.DataFrame({
        "user": users[rows],
        "item": picked if item_ids is None else np.asarray(item_ids)[picked],
        "score": scores[keep],
        "rank": ranks + 1,
    })
